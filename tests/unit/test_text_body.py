"""The text part never silently loses its body (DESIGN 15): for every shipped email, and
for generated templates with Jinja statements at the start of a block, between sections
and around them, the text part holds what the HTML shows, and no rule of the linter says
it lost it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.render.lint import lint
from tests.unit.test_render_support import customer, make_renderer, render

LAYOUT = """<mjml><mj-body>
<mj-section><mj-column><mj-text>Header</mj-text></mj-column></mj-section>
<mj-wrapper>{% block content %}{% endblock %}</mj-wrapper>
<mj-section><mj-column><mj-text>{{ company.postal_address }}
<a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text></mj-column></mj-section>
</mj-body></mjml>"""

STATEMENTS = [
    '{% set greeting = "Hello" %}',
    "{% if customer.first_name %}{% endif %}",
    "{# a note #}",
    "{% for n in [1] %}{% endfor %}",
    "",
]


@settings(max_examples=25, deadline=None)
@given(
    before=st.sampled_from(STATEMENTS),
    between=st.sampled_from(STATEMENTS),
    after=st.sampled_from(STATEMENTS),
)
def test_statements_anywhere_keep_the_body(
    tmp_path_factory: pytest.TempPathFactory, before: str, between: str, after: str
) -> None:
    """Statements at the start of the content block, between its sections and at its
    end: both paragraphs are in the text part."""
    child = (
        '{% extends "base.mjml" %}{% block content %}' + before
        + "<mj-section><mj-column><mj-text>First paragraph here.</mj-text>"
        + "</mj-column></mj-section>"
        + between
        + "<mj-section><mj-column><mj-text>Second paragraph here.</mj-text>"
        + "</mj-column></mj-section>"
        + after + "{% endblock %}"
    )  # fmt: skip
    tmp = tmp_path_factory.mktemp("t")
    monkeypatch = pytest.MonkeyPatch()
    try:
        renderer = make_renderer(tmp, monkeypatch, {"base.mjml": LAYOUT, "child.mjml": child})
        mail = render(renderer, "child.mjml")
    finally:
        monkeypatch.undo()
    assert "First paragraph here." in mail.text
    assert "Second paragraph here." in mail.text
    assert "<!" not in mail.text


SHIPPED = Path(__file__).resolve().parents[2] / "dripper" / "scaffold" / "templates"


@pytest.mark.parametrize(
    "name",
    # the newsletter needs an edition: `check --strict` on a fresh project lints it
    sorted(
        p.name
        for p in SHIPPED.glob("*.mjml")
        # notices of no campaign (the confirmation, the people's digest) have tests of their own
        if p.name not in ("layout.mjml", "confirm.mjml", "digest.mjml", "newsletter.mjml")
    ),
)
def test_every_shipped_email_keeps_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Each shipped template, rendered: a text part the linter finds whole."""
    import shutil

    folder = tmp_path / "templates"
    shutil.copytree(SHIPPED, folder)
    renderer = make_renderer(tmp_path, monkeypatch)
    mail = render(renderer, name, who=customer())
    errors = [f for f in lint(mail.html, mail.text, subject=mail.subject) if f.error]
    assert errors == []
    assert len(mail.text.split()) > 30
