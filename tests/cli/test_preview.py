"""`dripper preview` and `dripper check` rendering, through the CLI on a scaffolded project."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.cli.conftest import Project

STEPS = {
    "welcome": ["thank-you", "second-sale"],
    "value-newsletter": ["edition"],
    "referral-request": ["ask"],
    "birthday": ["greeting"],
    "feedback-follow-up": ["make-it-right"],
    "vip": ["regulars"],
    "newsletter-welcome": ["welcome"],
    "win-back": ["miss-you"],
}
TASKS = {  # task steps (DESIGN 16): no email, so previewed as the task they make
    "thank-you-card": ["card"],
    "unhappy-call": ["call"],
    "birthday-card": ["card"],
}


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def steps(project: Project) -> dict[str, list[str]]:
    """The shipped campaigns' steps, read from the files (the table above must agree)."""
    import yaml

    found = {}
    for path in sorted((project.root / "campaigns").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        found[data.get("name", path.stem)] = [s["id"] for s in data["steps"]]
    assert found == {**STEPS, **TASKS}
    return {name: ids for name, ids in found.items() if name in STEPS}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_shipped_step_previews_in_all_three_formats(
    project: Project, steps: dict[str, list[str]]
) -> None:
    for campaign, ids in steps.items():
        for step in ids:
            eml = project.run("preview", campaign, step, "--format", "eml")
            assert eml.exit_code == 0, (campaign, step, eml.output)
            raw = eml.stdout_bytes
            assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
            message = parse(raw)
            assert message.get_content_type() == "multipart/alternative"
            for header in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe"):
                assert message[header], (campaign, step, header)
            assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            parts = {p.get_content_type(): p.get_content() for p in message.iter_parts()}
            assert set(parts) == {"text/plain", "text/html"}
            assert "1 Roastery Lane" in parts["text/html"]
            assert "/u/" in parts["text/html"]  # a visible unsubscribe link
            assert "1 Roastery Lane" in parts["text/plain"]

            html = project.run("preview", campaign, step, "--format", "html")
            assert html.exit_code == 0
            assert html.output.lstrip().lower().startswith("<!doctype html")
            text = project.run("preview", campaign, step, "--format", "text")
            assert text.exit_code == 0
            assert "<" not in text.output.split("\n")[0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_task_step_previews_as_the_task_it_makes(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task step shows whom it is for and its text, rendered for the sample customer;
    `send-test` of one says it is no email (exit 2)."""
    for campaign, ids in TASKS.items():
        for step in ids:
            shown = project.run("preview", campaign, step, "--customer", "grace@example.com")
            assert shown.exit_code == 0, shown.output
            assert shown.output.startswith("task for owner about grace@example.com, due ")
            assert "Grace" in shown.output
    monkeypatch.setenv("DRIPPER_SECRET", "preview-tests-secret-0123456789")
    sent = project.run("send-test", "unhappy-call", "call", "--to", "me@example.com")
    assert sent.exit_code == 2
    assert "unhappy-call/call is a task step, not an email" in sent.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_customer_output_file_and_non_ascii(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "zoe.eml"
    result = project.run(
        "preview", "welcome", "--customer", "ZOE@example.com", "--format", "eml", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    message = parse(out.read_bytes())
    assert "Zoë" in str(message["To"])
    assert "Zoë" in str(message["Subject"])
    html = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
    assert "Zoë" in html.get_content()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["welcom"], "did you mean 'welcome'"),
        (["welcome", "second"], "did you mean 'second-sale'"),
        (["welcome", "--customer", "nobody@example.com"], "no customer 'nobody@example.com'"),
        (["value-newsletter", "--edition", "nope"], "has no edition 'nope'"),
        ([], "name a CAMPAIGN"),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_unknown_things_are_one_line_and_exit_2(
    project: Project, args: list[str], expected: str
) -> None:
    result = project.run("preview", *args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_template_error_names_the_template_line(project: Project) -> None:
    template = project.root / "templates" / "thank-you.mjml"
    lines = template.read_text().splitlines()
    lines.insert(4, "{{ customer.no_such_field }}")  # inside {% block content %}
    template.write_text("\n".join(lines) + "\n")
    result = project.run("preview", "welcome", "thank-you")
    assert result.exit_code == 1  # the work found a problem (bad usage would be 2)
    assert "thank-you.mjml:5" in result.output
    assert "no_such_field" in result.output

    check = project.run("check")
    assert check.exit_code == 1
    assert "thank-you.mjml:5" in check.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_check_renders_subjects_and_reports_syntax_errors(project: Project) -> None:
    assert project.run("check").exit_code == 0
    path = project.root / "campaigns" / "birthday.yaml"
    text = path.read_text()
    broken = text.replace("subject: ", "subject: '{{ customer.first_name '\n    # was: ", 1)
    path.write_text(broken)
    result = project.run("check")
    assert result.exit_code == 1
    assert "birthday.yaml" in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_customer_named_script_appears_as_text(project: Project) -> None:
    sheet = project.root / "customers.csv"
    sheet.write_text(
        sheet.read_text().replace("Ada,Lovelace", "<script>alert(1)</script>,Lovelace")
    )
    assert project.run("check").exit_code == 0
    result = project.run("preview", "welcome", "--format", "html")
    assert result.exit_code == 0
    assert "<script>alert(1)</script>" not in result.output
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_check_warns_when_smtp_has_no_dkim(project: Project) -> None:
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace('kind = "file"', 'kind = "smtp"'))
    result = project.run("check")
    assert result.exit_code == 0  # a warning, not a problem
    assert "warning: DKIM is not configured" in result.output

    config.write_text(
        config.read_text()
        .replace('domain = ""', 'domain = "acme.test"')
        .replace('selector = ""', 'selector = "s1"')
        .replace('private_key = ""', 'private_key = "missing.pem"')
    )
    result = project.run("check")
    assert result.exit_code == 1
    assert "[dkim] private_key" in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_preview_does_not_load_the_database_smtp_or_web_stacks(project: Project) -> None:
    """Structural, not timed: what a plain preview imports (DESIGN 11: under 0.5 s)."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dripper.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['--config', {str(project.root / 'config.toml')!r}, "
        "'preview', 'welcome'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('sqlalchemy', 'alembic', 'aiosmtplib', 'psycopg', 'starlette', 'uvicorn', "
        "'cryptography.hazmat.primitives.asymmetric.rsa')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=project.root
    )
    assert out.stdout.strip() == ""
