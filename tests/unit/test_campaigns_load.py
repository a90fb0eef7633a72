"""Loading campaign folders: the shipped examples, and every kind of problem reported at once."""

from __future__ import annotations

import os
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from dripper.campaigns import (
    Campaign,
    DateTrigger,
    EventTrigger,
    Goal,
    Schedule,
    WhenTrigger,
    load_campaigns,
)
from dripper.errors import Problem
from dripper.timeparse import Span

ROOT = Path(__file__).resolve().parents[2]
SCAFFOLD = ROOT / "dripper" / "scaffold"
TEMPLATES = SCAFFOLD / "templates"
DATA = ROOT / "tests" / "data" / "campaigns"
BROKEN = DATA / "broken"

Loaded = tuple[list[Campaign], list[Problem]]

# (file, line, key, part of the message): one or more per fixture file in broken/.
EXPECTED = [
    ("broken/tabs.yaml", 5, None, "use spaces, not tabs"),
    ("broken/unclosed.yaml", 5, None, "YAML syntax error"),
    ("broken/duplicate-key.yaml", 8, "steps[0].after", "duplicate key 'after' (first at line 5)"),
    ("broken/unknown-key.yaml", 5, "steps[0].aftr", "unknown key 'aftr' (did you mean 'after'?)"),
    (
        "broken/bad-duration.yaml",
        9,
        "steps[1].after",
        "bad duration '14x' (use 0, 30m, 2h, 14d, 6w, 6mo (calendar months) or 1y)",
    ),
    ("broken/bad-time.yaml", 6, "steps[0].send_at", 'quote it, like "09:00"'),
    ("broken/bad-expression.yaml", 3, "trigger.if", "'customer.purchases <' does not compile"),
    ("broken/unknown-variable.yml", 3, "trigger.when", "unknown name 'custmer'"),
    ("broken/unknown-variable.yml", 3, "trigger.when", "did you mean 'customer'?"),
    ("broken/bad-subject.yaml", 8, "steps[0].subject[1]", "subject does not compile"),
    (
        "broken/unknown-template.yaml",
        7,
        "steps[0].template",
        "template 'thankyou.mjml' not found in",
    ),
    ("broken/unknown-template.yaml", 7, "steps[0].template", "(did you mean 'thank-you.mjml'?)"),
    ("broken/template-escape.yaml", 7, "steps[0].template", "inside the templates folder"),
    (
        "broken/duplicate-step-id.yaml",
        8,
        "steps[1].id",
        "duplicate step id 'hello' (also steps[0] at line 4)",
    ),
    ("broken/out-of-order.yaml", 9, "steps[1].after", "3d is earlier than 14d in steps[0]"),
    (
        "broken/duplicate-name-b.yaml",
        2,
        "name",
        "campaign name 'shared-name' is already used by broken/duplicate-name-a.yaml",
    ),
    ("broken/bad-name.yaml", 1, "name", "bad campaign name 'Welcome Email'"),
    ("broken/not-a-mapping.yaml", 1, None, "the top level must be a mapping"),
    ("broken/no-steps.yaml", 3, "steps", "no steps"),
    ("broken/no-trigger.yaml", 1, "trigger", "no 'trigger' or 'schedule'"),
    ("broken/trigger-and-schedule.yaml", 3, "schedule", "not both"),
    ("broken/trigger-mixup.yaml", 3, "trigger.annually", "'annually' goes with a 'date' trigger"),
    ("broken/wrong-types.yaml", 3, "transactional", "expected true or false, got 'yes'"),
    ("broken/wrong-types.yaml", 4, "exit_on[0]", "unknown exit_on event 'unsubscribe'"),
    ("broken/wrong-types.yaml", 7, "goal.within", "must be more than 0"),
    ("broken/wrong-types.yaml", 9, "steps[0].id", "bad step id 'First Step'"),
    ("broken/wrong-types.yaml", 11, "steps[0].subject", 'got 42 (quote it: "42")'),
    ("broken/unsafe-tag.yaml", 2, "trigger.event", "YAML tag '!!python/object/apply"),
    ("broken/editions-without-schedule.yaml", 3, "editions", "'editions' needs a 'schedule'"),
    ("broken/missing-editions-folder.yaml", 2, "editions", "editions folder 'nowhere/' not found"),
    ("broken/newsletters-bad/01-no-title.md", 1, "title", "missing 'title'"),
    ("broken/newsletters-bad/02-no-front-matter.md", 1, None, "no front matter"),
    ("broken/newsletters-bad/03-bad-date.md", 3, "not_before", "cannot read '2027-13-01'"),
    (
        "broken/newsletters-bad/04-unknown-key.md",
        3,
        "titel",
        "unknown key 'titel' (did you mean 'title'?)",
    ),
    ("broken/newsletters-bad/05-empty-body.md", 3, None, "no text after its front matter"),
]


@pytest.fixture(scope="module")
def broken() -> Loaded:
    """One load of the whole broken folder: every assertion below reads the same result."""
    return load_campaigns(BROKEN, TEMPLATES, display_base=DATA)


@pytest.mark.parametrize(("file", "line", "key", "fragment"), EXPECTED)
def test_broken_folder_reports_each_problem(
    broken: Loaded, file: str, line: int, key: str | None, fragment: str
) -> None:
    """Each kind of problem is reported with its file, line and dotted key in one load call."""
    _, problems = broken
    found = [p for p in problems if (p.file, p.line, p.key) == (file, line, key)]
    assert any(fragment in p.message for p in found), "\n".join(str(p) for p in problems)


def test_broken_folder_still_returns_clean_campaigns(broken: Loaded) -> None:
    """Campaigns without problems load although their neighbours do not; no others do."""
    campaigns, problems = broken
    assert [c.name for c in campaigns] == ["shared-name", "good"]
    clean = {"broken/good.yaml", "broken/duplicate-name-a.yaml"}
    assert not [p for p in problems if p.file in clean]
    # bad-editions.yaml itself is fine: its problems are reported under its edition files.
    reported = {p.file for p in problems} | {"broken/bad-editions.yaml"}
    for path in sorted([*BROKEN.glob("*.yaml"), *BROKEN.glob("*.yml")]):
        shown = f"broken/{path.name}"
        assert shown in clean or shown in reported, f"{shown} reported nothing"


def test_problems_are_sorted_one_line_each(broken: Loaded) -> None:
    """Problems come sorted by file then line, each one line formatted file:line: key: message."""
    _, problems = broken
    assert [(p.file, p.line or 0) for p in problems] == sorted(
        (p.file, p.line or 0) for p in problems
    )
    for problem in problems:
        assert "\n" not in str(problem)
    assert (
        "broken/bad-duration.yaml:9: steps[1].after: bad duration '14x' "
        "(use 0, 30m, 2h, 14d, 6w, 6mo (calendar months) or 1y)" in [str(p) for p in problems]
    )


def test_shipped_campaigns_load_without_problems() -> None:
    """The example campaigns that `dripper init` copies load cleanly."""
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", TEMPLATES)
    assert problems == []
    assert sorted(c.name for c in campaigns) == [
        "birthday",
        "birthday-card",
        "feedback-follow-up",
        "newsletter-welcome",
        "referral-request",
        "thank-you-card",
        "unhappy-call",
        "value-newsletter",
        "vip",
        "welcome",
        "win-back",
    ]


def _shipped(name: str) -> Campaign:
    campaigns, _ = load_campaigns(SCAFFOLD / "campaigns", TEMPLATES)
    return next(c for c in campaigns if c.name == name)


def test_welcome_is_the_design_example() -> None:
    """welcome.yaml reads as DESIGN 2 describes: trigger, goal, exit, two steps, A/B subjects."""
    welcome = _shipped("welcome")
    assert isinstance(welcome.trigger, EventTrigger)
    assert welcome.trigger.event == "purchase"
    assert welcome.trigger.condition is not None
    assert welcome.trigger.condition.source == "customer.purchases == 1"
    assert welcome.goal == Goal("purchase", Span.of(timedelta(days=30)))
    assert welcome.exit_on == frozenset({"reply"})
    assert welcome.schedule is None
    assert not welcome.transactional
    assert [s.id for s in welcome.steps] == ["thank-you", "second-sale"]
    first, second = welcome.steps
    assert (first.after, first.send_at, first.condition) == (Span(), None, None)
    assert second.after == Span.of(timedelta(days=14))
    assert second.send_at == time(10, 0)
    assert len(second.subjects) == 2
    assert second.template == "second-sale.mjml"
    assert welcome.step("second-sale") is second
    assert welcome.step("nope") is None


def test_newsletter_has_editions_in_file_order() -> None:
    """value-newsletter runs every 6 weeks and reads its Markdown editions in name order."""
    newsletter = _shipped("value-newsletter")
    assert newsletter.schedule == Schedule(Span.of(timedelta(weeks=6)), date(2027, 1, 5))
    assert newsletter.trigger is None
    assert len(newsletter.editions) >= 2
    slugs = [e.slug for e in newsletter.editions]
    assert slugs == sorted(slugs)
    for edition in newsletter.editions:
        assert edition.title
        assert "<h2>" in edition.html
        assert "**" not in edition.text
        assert "## " not in edition.text
        assert "---" not in edition.text[:3]
    assert newsletter.edition(slugs[0]) is newsletter.editions[0]
    step = newsletter.steps[0]
    assert step.send_at == time(9, 0)
    assert "edition.title" in step.subjects[0]


def test_birthday_and_referral_triggers() -> None:
    """birthday is an annual date trigger; referral-request waits 3 days after purchase two."""
    birthday = _shipped("birthday")
    assert isinstance(birthday.trigger, DateTrigger)
    assert birthday.trigger.annually
    assert birthday.trigger.date.names == frozenset({"customer"})
    referral = _shipped("referral-request")
    assert isinstance(referral.trigger, EventTrigger)
    assert referral.trigger.condition is not None
    assert referral.trigger.condition.source == "customer.purchases == 2"
    assert referral.steps[0].after == Span.of(timedelta(days=3))
    assert referral.steps[0].send_at == time(10, 0)
    assert referral.exit_on == frozenset({"reply"})


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


STEPS = """steps:
  - id: hello
    after: 0
    subject: Hello
    template: thank-you.mjml
"""


def test_when_trigger_and_quoted_schedule_date(tmp_path: Path) -> None:
    """A `when` trigger compiles its condition; a schedule accepts a quoted ISO date."""
    _write(
        tmp_path, "big-spenders.yaml", 'trigger: {when: "customer.total_spent >= 500"}\n' + STEPS
    )
    _write(tmp_path, "monthly.yaml", 'schedule: {every: 4w, starting: "2027-02-01"}\n' + STEPS)
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES)
    assert problems == []
    by_name = {c.name: c for c in campaigns}
    when = by_name["big-spenders"].trigger
    assert isinstance(when, WhenTrigger)
    assert when.condition.evaluate({"customer": {"total_spent": 600}}) is True
    assert by_name["monthly"].schedule == Schedule(Span.of(timedelta(weeks=4)), date(2027, 2, 1))


def test_missing_folders(tmp_path: Path) -> None:
    """A missing campaigns folder is one problem; a missing templates folder is reported once."""
    campaigns, problems = load_campaigns(tmp_path / "nope", TEMPLATES, display_base=tmp_path)
    assert campaigns == []
    assert [(p.file, p.line, p.key) for p in problems] == [("nope", None, None)]
    assert "campaigns folder not found" in problems[0].message
    _write(tmp_path, "campaigns/a.yaml", "trigger: {event: purchase}\n" + STEPS)
    _write(tmp_path, "campaigns/b.yaml", "trigger: {event: signup}\n" + STEPS)
    _, problems = load_campaigns(tmp_path / "campaigns", tmp_path / "tpl", display_base=tmp_path)
    assert [p.file for p in problems] == ["tpl"]


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    """A campaign file over 1 MiB is refused with a size message, whatever it contains."""
    _write(tmp_path, "huge.yaml", "trigger: {event: purchase}\n" + STEPS + "#" * (1 << 20))
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert campaigns == []
    assert len(problems) == 1
    assert problems[0].file == "huge.yaml"
    assert "larger than 1024 KiB" in problems[0].message


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    """Non-UTF-8 bytes and an empty file are problems, not exceptions."""
    (tmp_path / "latin1.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    _write(tmp_path, "empty.yaml", "# nothing yet\n")
    _, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    messages = {p.file: p.message for p in problems}
    assert "not UTF-8" in messages["latin1.yaml"]
    assert "the file is empty" in messages["empty.yaml"]


def test_display_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Problem files are shown relative to the current directory by default, else as given."""
    _write(tmp_path, "campaigns/x.yaml", "trigger: {event: purchase}\nsteps: []\n")
    monkeypatch.chdir(tmp_path)
    _, problems = load_campaigns(Path("campaigns"), TEMPLATES)
    assert problems[0].file == os.path.join("campaigns", "x.yaml")
    _, problems = load_campaigns(tmp_path / "campaigns", TEMPLATES, display_base=ROOT)
    assert problems[0].file == str(tmp_path / "campaigns" / "x.yaml")


def test_same_stem_in_yaml_and_yml_is_a_duplicate_name(tmp_path: Path) -> None:
    """Two files whose stems give the same campaign name cannot both load."""
    _write(tmp_path, "promo.yaml", "trigger: {event: purchase}\n" + STEPS)
    _write(tmp_path, "promo.yml", "trigger: {event: purchase}\n" + STEPS)
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert [c.path.name for c in campaigns] == ["promo.yaml"]
    assert [(p.file, p.key) for p in problems] == [("promo.yml", "name")]


def test_symlinked_template_outside_the_folder_is_refused(tmp_path: Path) -> None:
    """A template that resolves outside the templates folder is refused, even via a symlink."""
    templates = tmp_path / "templates"
    templates.mkdir()
    _write(tmp_path, "secret.html", "<p>secret</p>")
    (templates / "leak.html").symlink_to(tmp_path / "secret.html")
    _write(
        tmp_path,
        "campaigns/x.yaml",
        STEPS.replace("thank-you.mjml", "leak.html") + "trigger: {event: purchase}\n",
    )
    _, problems = load_campaigns(tmp_path / "campaigns", templates, display_base=tmp_path)
    assert [(p.key, "leads outside" in p.message) for p in problems] == [
        ("steps[0].template", True)
    ]


def test_templates_must_be_mjml_or_html(tmp_path: Path) -> None:
    """A template that is not .mjml or .html is refused by name, before looking for it."""
    _write(tmp_path, "x.yaml", "trigger: {event: purchase}\n" + STEPS.replace(".mjml", ".txt"))
    _, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert [p.message for p in problems] == ["template 'thank-you.txt' must end in .mjml or .html"]


def test_unquoted_braces_get_a_quoting_hint(tmp_path: Path) -> None:
    """`subject: {{ ... }}` unquoted is a YAML mapping; the message says to quote it."""
    _write(
        tmp_path,
        "x.yaml",
        "trigger: {event: purchase}\n"
        + STEPS.replace("subject: Hello", "subject: {{ customer.first_name }}"),
    )
    _, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert len(problems) == 1
    assert problems[0].key == "steps[0].subject"
    assert "quote text that starts with '{'" in problems[0].message


def test_edition_markdown_renders_without_raw_html(tmp_path: Path) -> None:
    """Raw HTML in an edition is escaped, not passed through; Markdown becomes HTML."""
    _write(
        tmp_path,
        "news/01-first.md",
        "---\ntitle: First\nnot_before: 2027-01-01\n---\n# Hi\n\n<script>alert(1)</script>\n",
    )
    _write(
        tmp_path,
        "news.yaml",
        "schedule: {every: 6w, starting: 2027-01-05}\neditions: news/\n" + STEPS,
    )
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert problems == []
    (edition,) = campaigns[0].editions
    assert (edition.slug, edition.title, edition.not_before) == (
        "01-first",
        "First",
        date(2027, 1, 1),
    )
    assert "<h1>Hi</h1>" in edition.html
    assert "<script>" not in edition.html
    assert "&lt;script&gt;" in edition.html


def test_empty_editions_folder_is_a_problem(tmp_path: Path) -> None:
    """A newsletter whose editions folder holds no .md file would never send: it is reported."""
    (tmp_path / "news").mkdir()
    _write(
        tmp_path,
        "news.yaml",
        "schedule: {every: 6w, starting: 2027-01-05}\neditions: news/\n" + STEPS,
    )
    _, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert [(p.line, p.key) for p in problems] == [(2, "editions")]
    assert "no editions in news" in problems[0].message


def test_hostile_yaml_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    """Deep nesting and aliases that fan out are refused quickly, each as one problem."""
    _write(tmp_path, "deep.yaml", "description: " + "[" * 5000 + "]" * 5000 + "\n")
    step = "{id: a, after: 0, subject: *subjects, template: thank-you.mjml}"
    _write(
        tmp_path,
        "fanout.yaml",
        "trigger: {event: purchase}\n"
        f"description: &subjects [{', '.join(['x'] * 1000)}]\n"
        f"steps: [&step {step}, {', '.join(['*step'] * 1000)}]\n",
    )
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert campaigns == []
    messages = {p.file: p.message for p in problems}
    assert messages["deep.yaml"] == "YAML nested too deeply"
    assert len([p for p in problems if p.file == "fanout.yaml"]) < 10
    assert any("aliases" in p.message for p in problems if p.file == "fanout.yaml")


def test_after_is_optional_and_defaults_to_zero(tmp_path: Path) -> None:
    """A step without `after` is due at enrollment: a newsletter's one step needs no `after: 0`."""
    _write(
        tmp_path,
        "letter.yaml",
        "schedule: {every: 6w, starting: 2027-01-05}\n"
        "steps:\n  - {id: edition, subject: Hello, template: thank-you.mjml}\n",
    )
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES)
    assert problems == []
    assert campaigns[0].steps[0].after == Span()


def test_a_single_step_can_be_transactional(tmp_path: Path) -> None:
    """`transactional: true` on one step marks that step only; a non-boolean is a problem."""
    _write(
        tmp_path,
        "welcome.yaml",
        "trigger: {event: purchase}\nsteps:\n"
        "  - {id: thanks, transactional: true, subject: Hi, template: thank-you.mjml}\n"
        "  - {id: offer, after: 14d, subject: Offer, template: thank-you.mjml}\n",
    )
    _write(
        tmp_path,
        "bad.yaml",
        "trigger: {event: purchase}\nsteps:\n"
        "  - {id: thanks, transactional: yes please, subject: Hi, template: thank-you.mjml}\n",
    )
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    thanks, offer = campaigns[0].steps
    assert (thanks.transactional, offer.transactional) == (True, False)
    assert not campaigns[0].transactional
    assert [(p.file, p.line, p.key) for p in problems] == [
        ("bad.yaml", 3, "steps[0].transactional")
    ]


def test_the_scaffold_thank_you_is_transactional() -> None:
    """The shipped thank-you is marked transactional: it never waits behind the cap."""
    thanks, offer = _shipped("welcome").steps
    assert thanks.transactional
    assert not offer.transactional


@pytest.mark.parametrize("after", ["99999999w", "5300w", "36526d", "99999999999999999999999h"])
def test_durations_longer_than_a_century_are_refused_with_file_and_line(
    tmp_path: Path, after: str
) -> None:
    """An absurd `after` is a load problem naming file:line, never an OverflowError later."""
    _write(
        tmp_path,
        "long.yaml",
        f"trigger: {{event: purchase}}\nsteps:\n  - id: a\n    after: {after}\n"
        "    subject: Hi\n    template: thank-you.mjml\n",
    )
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert campaigns == []
    assert [(p.file, p.line, p.key) for p in problems] == [("long.yaml", 4, "steps[0].after")]
    assert "longer than 100 years" in problems[0].message


@pytest.mark.parametrize(
    "scalar", ['"\\ud800": 1', 'description: "x\\udfff"', 'description: "\\0"']
)
def test_characters_that_are_not_text_are_a_problem(tmp_path: Path, scalar: str) -> None:
    """A lone surrogate or NUL in a campaign file is one problem that can be printed."""
    _write(tmp_path, "odd.yaml", "trigger: {event: purchase}\n" + scalar + "\n" + STEPS)
    campaigns, problems = load_campaigns(tmp_path, TEMPLATES, display_base=tmp_path)
    assert campaigns == []
    assert [(p.file, p.line) for p in problems] == [("odd.yaml", 2)]
    assert "not text" in problems[0].message
    str(problems[0]).encode("utf-8")  # printable: no surrogate reaches the terminal
