"""`dripper check` and the enrolling event (DESIGN 12): an event-triggered campaign's
emails render with its sample event; a campaign no event enrolls anybody in may not read
`event`, and check names the file and line."""

from __future__ import annotations

from tests.cli.conftest import Project


def test_check_names_templates_reading_event_without_an_event_trigger(project: Project) -> None:
    """The birthday greeting (a date trigger) reading `event` in its subject and template
    is a problem each (file:line), exit 1; the welcome sequence reading it is fine."""
    birthday = project.root / "campaigns" / "birthday.yaml"
    text = birthday.read_text()
    birthday.write_text(text.replace("subject: ", 'subject: "{{ event.data.x }}" # ', 1))
    template = project.root / "templates" / "birthday.mjml"
    lines = template.read_text().splitlines()
    lines.insert(2, "{% if event %}{{ event.data.order }}{% endif %}")
    template.write_text("\n".join(lines) + "\n")
    result = project.run("check")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "campaigns/birthday.yaml:" in out
    assert "steps.greeting.subject: reads `event`" in out
    assert "templates/birthday.mjml:3: reads `event`, but campaign 'birthday' has no event" in out
    assert "2 problem(s)" in result.stderr
    assert "thank-you" not in out


def test_the_shipped_thank_you_shows_the_sample_order(project: Project) -> None:
    """The preview of the thank-you lists what the campaign's sample event ordered."""
    result = project.run("preview", "welcome", "thank-you", "--format", "text")
    assert result.exit_code == 0, result.output
    assert "Your order #1001:" in result.stdout
    assert "2 × Paper filters (100)" in result.stdout
