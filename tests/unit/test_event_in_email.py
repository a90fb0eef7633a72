"""The enrolling event in every email of its enrollment (DESIGN 12): `event` in subjects
and bodies, `sample_event:` for previews and `check`, and `check` naming a template that
reads `event` in a campaign no event enrolls anybody in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dripper.campaigns import load_campaigns
from dripper.campaigns.samplecheck import sample_event
from dripper.engine.model import EventFacts
from tests.unit.test_render_support import NOW, customer, make_renderer, parse

ORDER = EventFacts(
    7,
    "purchase",
    datetime(2027, 3, 1, 8, tzinfo=UTC),
    {"order": "#1001", "items": [{"name": "Kenya AA", "quantity": 2}]},
    "shopify:order:1001",
)
TEMPLATE = """<mjml><mj-body><mj-section><mj-column><mj-text>
{% if event %}Order {{ event.data.order }} ({{ event.id }}):
{% for item in event.data["items"] %}{{ item.quantity }} x {{ item.name }}{% endfor %}
{% else %}no event{% endif %}
</mj-text></mj-column></mj-section></mj-body></mjml>"""


def write_campaign(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_subject_and_body_see_the_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An email of an event's enrollment shows the event's id and data in its subject and
    body; without an event, `event` is None and `{% if event %}` says so."""
    from tests.unit.test_render_support import Campaign, Step

    renderer = make_renderer(tmp_path, monkeypatch, {"order.mjml": TEMPLATE})
    step = Step(template="order.mjml", subjects=("Your order {{ event.data.order }}",))
    email = renderer.render(
        Campaign(), step, customer(), now=NOW, message_id=renderer.new_message_id(), event=ORDER
    )
    assert email.subject == "Your order #1001"
    assert "Order #1001 (shopify:order:1001)" in email.text
    assert "2 x Kenya AA" in email.text
    assert parse(email.mime)["Subject"] == "Your order #1001"
    bare = renderer.render(
        Campaign(),
        Step(template="order.mjml", subjects=("Hello",)),
        customer(),
        now=NOW,
        message_id=renderer.new_message_id(),
    )
    assert "no event" in bare.text


def test_sample_event_is_what_previews_and_check_show(tmp_path: Path) -> None:
    """`sample_event:` gives the sample event's data and id; without it an event-triggered
    campaign's sample event has empty data; other campaigns have none."""
    campaigns_dir = tmp_path / "campaigns"
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "t.mjml").write_text(TEMPLATE, encoding="utf-8")
    write_campaign(
        campaigns_dir,
        "thanks",
        "trigger: {event: purchase}\n"
        "sample_event:\n  id: shopify:order:1\n  data: {order: '#1', when: 2027-01-05}\n"
        "steps:\n  - {id: a, subject: Hi, template: t.mjml}\n",
    )
    write_campaign(
        campaigns_dir,
        "plain",
        "trigger: {event: signup}\nsteps:\n  - {id: a, subject: Hi, template: t.mjml}\n",
    )
    write_campaign(
        campaigns_dir,
        "letter",
        "schedule: {every: 6w, starting: 2027-01-05}\n"
        "steps:\n  - {id: a, subject: Hi, template: t.mjml}\n",
    )
    loaded, problems = load_campaigns(campaigns_dir, templates, display_base=tmp_path)
    assert not problems
    by_name = {c.name: c for c in loaded}
    thanks = sample_event(by_name["thanks"], NOW)
    assert thanks is not None
    assert (thanks.key, dict(thanks.data)) == (
        "shopify:order:1",
        {"order": "#1", "when": "2027-01-05"},
    )
    plain = sample_event(by_name["plain"], NOW)
    assert plain is not None
    assert plain.type == "signup"
    assert dict(plain.data) == {}
    assert sample_event(by_name["letter"], NOW) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "schedule: {every: 6w, starting: 2027-01-05}\nsample_event: {data: {a: 1}}\n",
            "a sample event needs an event trigger",
        ),
        ("trigger: {event: purchase}\nsample_event: {data: [1, 2]}\n", "expected a mapping"),
        ("trigger: {event: purchase}\nsample_event: {dta: {}}\n", "unknown key 'dta'"),
        ("trigger: {event: purchase}\nsample_event: {id: ''}\n", "empty string"),
    ],
)
def test_a_bad_sample_event_is_a_problem_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """A sample event on a campaign no event enrolls in, or one that is not shaped like an
    event, is a problem naming the file and key."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "t.mjml").write_text(TEMPLATE, encoding="utf-8")
    write_campaign(
        tmp_path / "campaigns",
        "bad",
        text + "steps:\n  - {id: a, subject: Hi, template: t.mjml}\n",
    )
    _, problems = load_campaigns(tmp_path / "campaigns", templates, display_base=tmp_path)
    assert any(message in p.message and p.file == "campaigns/bad.yaml" for p in problems), problems


def test_event_data_named_like_a_dict_method_reads_as_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`event.data.items` (a shop's order lines) is the data, never the dict method, in
    expressions and in templates alike."""
    from dripper.campaigns.expressions import Expression
    from dripper.engine.plan import context
    from tests.unit.test_render_support import Campaign, Step

    condition = Expression.compile("event.data.items|length == 1", file="t.yaml", line=1)
    loaded = _campaign(tmp_path)
    assert condition.evaluate(context(customer(), loaded, NOW, ORDER)) is True
    renderer = make_renderer(tmp_path, monkeypatch, {"order.mjml": TEMPLATE})
    step = Step(template="order.mjml", subjects=("{{ event.data.items|length }} line(s)",))
    email = renderer.render(
        Campaign(), step, customer(), now=NOW, message_id=renderer.new_message_id(), event=ORDER
    )
    assert email.subject == "1 line(s)"


def _campaign(tmp_path: Path) -> Any:
    folder = tmp_path / "c"
    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "t.mjml").write_text(TEMPLATE, encoding="utf-8")
    write_campaign(
        folder,
        "a",
        "trigger: {event: purchase}\nsteps:\n  - {id: a, subject: Hi, template: t.mjml}\n",
    )
    loaded, problems = load_campaigns(folder, templates, display_base=tmp_path)
    assert not problems
    return loaded[0]
