"""Task and webhook steps (DESIGN 16) in the pure core: how they load (and every mistake
with its line), what config they need, when they go (no email consent, cap or quiet
hours; only a complaint ends them), and which addresses a webhook may reach."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from dripper.campaigns import Campaign, load_campaigns
from dripper.campaigns.personal import host_problem, personal_problems
from dripper.config import FrequencyCap
from dripper.customers.model import Customer, Status
from dripper.engine.model import EnrollmentStatus, Verdict
from dripper.engine.plan import context, plan_enrollment, send_decision
from dripper.settings_personal import Person, TasksSettings, WebhooksSettings, _people
from dripper.transport.webhook import address_problem, signature

T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)
GOOD = """description: the personal touch
trigger: {event: purchase}
steps:
  - id: thanks
    subject: Thanks
    template: t.mjml
  - id: card
    after: 1d
    task: "Card for {{ customer.first_name }}"
    assignee: roaster
    due: 3d
  - id: print
    after: 2d
    webhook:
      url: https://api.postcards.example/v1/cards
      body: {to: "{{ customer.first_name }}", lines: ["{{ customer.email }}", 2]}
"""


def load(tmp_path: Path, text: str) -> tuple[list[Campaign], list[str]]:
    (tmp_path / "campaigns").mkdir(exist_ok=True)
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "t.mjml").write_text("<mjml><mj-body></mj-body></mjml>")
    (tmp_path / "campaigns" / "c.yaml").write_text(text)
    campaigns, problems = load_campaigns(
        tmp_path / "campaigns", tmp_path / "templates", display_base=tmp_path
    )
    return list(campaigns), [str(p) for p in problems]


def test_task_and_webhook_steps_load(tmp_path: Path) -> None:
    """A task keeps its template, assignee and due; a webhook its URL and body; both plan
    an outbox row of their kind at their offsets."""
    campaigns, problems = load(tmp_path, GOOD)
    assert problems == []
    thanks, card, hook = campaigns[0].steps
    assert [s.kind for s in (thanks, card, hook)] == ["email", "task", "webhook"]
    assert (card.task, card.assignee, str(card.due)) == (
        "Card for {{ customer.first_name }}",
        "roaster",
        "3d",
    )
    assert hook.webhook is not None
    assert hook.webhook.url == "https://api.postcards.example/v1/cards"
    assert hook.personal_sources == ("{{ customer.first_name }}", "{{ customer.email }}")
    plan = plan_enrollment(
        campaigns[0],
        customer(),
        occurrence="x",
        enrolled_at=T0,
        event_id=None,
        tz=UTC,
        now=T0,
    )
    assert [(s.step, s.kind, s.due_at - T0) for s in plan.sends] == [
        ("thanks", "email", timedelta(0)),
        ("card", "task", timedelta(days=1)),
        ("print", "webhook", timedelta(days=2)),
    ]


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ('task: "x"\n    subject: Hi', "c.yaml:6: steps[0].subject: a task step has no 'subject'"),
        ('task: "{% if %}"', "c.yaml:5: steps[0].task: task does not compile"),
        ('task: "  "', "c.yaml:5: steps[0].task: expected the task (what the person is to do)"),
        ('task: "x"\n    due: 0', "c.yaml:6: steps[0].due: due must be longer than 0"),
        ('task: "x"\n    assignee: Big Boss', "c.yaml:6: steps[0].assignee:"),
        (
            'task: "x"\n    webhook: {url: "https://a.example"}',
            "c.yaml:6: steps[0].webhook: a step is a task or a webhook, not both",
        ),
        ("subject: Hi\n    template: t.mjml\n    due: 2d", "c.yaml:7: steps[0].due: 'due' belongs"),
        ("webhook: {url: ftp://a.example/x}", "expected an https:// URL"),
        ('webhook: {url: "https://bücher.example/x"}', "in ASCII (its punycode"),
        ('webhook: {url: "https://u:p@a.example/"}', "no user or password in the URL"),
        ("webhook: {body: {}}", "missing 'url'"),
        ('webhook: {url: "https://a.example", body: [1]}', "expected a mapping"),
        ('webhook: {url: "https://a.example", body: {a: "{{"}}', "steps[0].webhook.body.a:"),
        ("id2: x", "missing 'template'"),
    ],
)
def test_every_mistake_is_named_with_its_line(tmp_path: Path, step: str, expected: str) -> None:
    """A wrong task or webhook step: one problem naming file, line and key."""
    text = f"description: x\ntrigger: {{event: purchase}}\nsteps:\n  - id: s\n    {step}\n"
    campaigns, problems = load(tmp_path, text)
    assert campaigns == []
    assert any(expected in p for p in problems), problems


def test_what_the_steps_need_of_config(tmp_path: Path) -> None:
    """The assignee among [tasks] people (someone must exist at all); the webhook's host
    among [webhooks] allowed_hosts, https unless a listed loopback address."""
    campaigns, _ = load(tmp_path, GOOD)
    people = TasksSettings(people=(Person("owner", "ana@acme.test"),))
    found = [str(p) for p in personal_problems(campaigns, people, WebhooksSettings())]
    assert found == [
        "campaigns/c.yaml:10: steps.card.assignee: no 'roaster' in [tasks] people of config.toml "
        "(known: owner)",
        "campaigns/c.yaml:14: steps.print.webhook.url: host api.postcards.example is not in "
        "[webhooks] allowed_hosts of config.toml (listed: none yet); "
        "add it there if it is yours to call",
    ]
    nobody = personal_problems(campaigns, TasksSettings(), WebhooksSettings())
    assert "no one to give the task to" in str(nobody[0])
    assert host_problem("https://a.example/x", ["a.example"]) is None
    assert host_problem("http://127.0.0.1:8/x", ["127.0.0.1"]) is None
    assert "use https://" in str(host_problem("http://a.example/x", ["a.example"]))
    assert "not in [webhooks]" in str(host_problem("https://b.example/x", ["a.example"]))


def test_people_in_config() -> None:
    """An address, or a table with email, language and name; a wrong one is one line."""
    found = _people({"owner": "Ana@Acme.test", "roaster": {"email": "r@x.test", "language": "de"}})
    assert found == (Person("owner", "ana@acme.test"), Person("roaster", "r@x.test", "de"))
    for wrong, said in (
        ({"Owner": "a@b.test"}, "use lower-case"),
        ({"owner": "not an address"}, "invalid email address"),
        ({"owner": {"email": "a@b.test", "language": "xx"}}, "language"),
        ({"owner": {"mail": "a@b.test"}}, "unknown key 'mail'"),
    ):
        with pytest.raises(ValueError, match=said):
            _people(wrong)


def customer(**changes: object) -> Customer:
    base = Customer(
        id=1,
        email="ada@example.com",
        first_name="Ada",
        last_name="",
        timezone="UTC",
        locale="en",
        tags=(),
        attributes={},
        status=Status.SUBSCRIBED,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        purchases=1,
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_task_goes_whatever_the_email_consent_but_not_after_a_complaint(
    tmp_path: Path,
) -> None:
    """Unsubscribed from email, bounced, not subscribed, outside the cap or in quiet hours:
    the task is made. A complaint (or erasure) cancels it; an ended enrollment too; its
    `if` is checked like an email's."""
    campaigns, _ = load(tmp_path, GOOD)
    campaign = campaigns[0]
    card = campaign.steps[1]
    gone = customer(status=Status.UNSUBSCRIBED)

    def decide(who: Customer, **kw: object) -> Verdict:
        args: dict[str, object] = {
            "campaign": campaign,
            "step": card,
            "customer": who,
            "suppressed": False,
            "enrollment_status": EnrollmentStatus.ACTIVE,
            "ctx": context(who, campaign, T0),
            "now": T0,
            "fallback_tz": "UTC",
            "quiet_hours": (time(0), time(23, 59)),
            "cap": FrequencyCap(1, timedelta(days=7)),
            "recent_sends": [T0 - timedelta(hours=1)],
        }
        args.update(kw)
        return send_decision(**args).verdict  # type: ignore[arg-type]

    assert decide(customer()) is Verdict.SEND
    assert decide(gone, suppressed=True, suppression="unsubscribed") is Verdict.SEND
    assert decide(gone, suppressed=True, suppression="bounced") is Verdict.SEND
    assert decide(gone, suppressed=True, suppression="complained") is Verdict.CANCEL
    assert decide(customer(), enrollment_status=EnrollmentStatus.EXITED) is Verdict.CANCEL
    # the email step of the same campaign is held by the cap, and cancelled when gone
    email = campaign.steps[0]
    assert decide(customer(), step=email) is Verdict.DEFER
    assert decide(gone, step=email, suppressed=True, suppression="unsubscribed") is Verdict.CANCEL


@pytest.mark.parametrize(
    ("addresses", "allowed", "refused"),
    [
        (["93.184.216.34"], [], None),
        (["2606:2800:220:1:248:1893:25c8:1946"], [], None),
        (["127.0.0.1"], [], "(loopback)"),
        (["::1"], [], "(loopback)"),
        (["::ffff:127.0.0.1"], [], "127.0.0.1 (loopback)"),
        (["10.1.2.3"], [], "(private)"),
        (["192.168.0.7"], [], "(private)"),
        (["169.254.169.254"], [], "(link-local)"),  # the cloud metadata address
        (["fe80::1"], [], "(link-local)"),
        (["100.64.0.1"], [], "(not public)"),
        (["93.184.216.34", "10.0.0.1"], [], "10.0.0.1 (private)"),  # every address counts
        (["64:ff9b::a00:1"], [], "not public"),  # NAT64 carrying 10.0.0.1
        (["2002:7f00:1::"], [], "not public"),  # 6to4 carrying 127.0.0.1
        (["2001:0:4136:e378:8000:63bf:3fff:fdd2"], [], "refused"),  # Teredo
        (["::7f00:1"], [], "not public"),  # IPv4-compatible 127.0.0.1
        (["192.0.0.8"], [], "not public"),  # IETF protocol assignments
        (["64:ff9b::5db8:d822"], [], None),  # NAT64 carrying a public address
        (["127.0.0.1"], ["127.0.0.1"], None),
        ([], [], "resolves to no address"),
    ],
)
def test_which_addresses_a_webhook_may_reach(
    addresses: list[str], allowed: list[str], refused: str | None
) -> None:
    """Public addresses, or listed ones; a private, loopback, link-local or shared one
    (IPv4-mapped too) is refused unless listed, whatever name led to it."""
    found = address_problem("hooks.example", addresses, allowed)
    if refused is None:
        assert found is None
    else:
        assert found is not None
        assert refused in found


def test_the_signature_is_hmac_sha256_of_the_body() -> None:
    """What a receiver recomputes: hex HMAC-SHA256 of the exact bytes."""
    import hashlib
    import hmac

    body = b'{"to":"Ada"}'
    assert signature("s3cret", body) == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
