"""Input that used to crash or slip through, through the real CLI on SQLite and PostgreSQL:
each is refused with one line (exit 2 for bad input, 1 for `check` problems), never
"internal error", and nothing of it is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import Project

NOW = "2027-01-04T15:00:00Z"


def no_crash(output: str) -> None:
    assert "internal error" not in output
    assert "Traceback" not in output


def events_of(project: Project, address: str) -> list[dict[str, object]]:
    result = project.run("customers", "show", address, "--json")
    if result.exit_code != 0:
        return []
    events: list[dict[str, object]] = json.loads(result.stdout)["events"]
    return events


@pytest.mark.parametrize(
    ("data", "at", "message"),
    [
        ('{"amount": 1e308}', None, "too large"),
        ('{"amount": 12345678901234567890123456789012}', None, "too large"),
        ('{"amount": "12345678901234567890123456789012"}', None, "too large"),
        ('{"amount": 1e16}', None, "too large"),
        ('{"note": "a\\u0000b"}', None, "NUL byte"),
        ('{"\\ud800": 1}', None, "lone surrogate"),
        ('{"amount": NaN}', None, "NaN"),
        ("{}", "9999-12-31T23:59:59Z", "out of range"),
        ("{}", "0001-01-01T00:00:00+01:00", "out of range"),
    ],
)
def test_event_input_no_database_can_hold_is_refused(
    project: Project, data: str, at: str | None, message: str
) -> None:
    """Each gets exit 2 and one line; no event and no customer is written."""
    args = ["--now", NOW, "event", "purchase", "ada@example.com", "--data", data]
    if at is not None:
        args += ["--at", at]
    result = project.run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    no_crash(result.output)
    assert events_of(project, "ada@example.com") == []


def test_a_line_break_in_event_data_a_subject_shows_is_refused(project: Project) -> None:
    """The subject shows `event.data.product`: a newline there would fail every send."""
    project.write(
        "campaigns/restock.yaml",
        "trigger: {event: restock}\nsteps:\n"
        '  - {id: back, subject: "{{ event.data.product }} is back", template: thank-you.mjml}\n',
    )
    bad = project.run(
        "--now", NOW, "event", "restock", "ada@example.com", "--data", '{"product": "Bag\\r\\nX"}'
    )
    assert bad.exit_code == 2, bad.output
    assert "'product' holds a line break" in bad.output
    assert events_of(project, "ada@example.com") == []
    fine = project.run(
        "--now", NOW, "event", "restock", "ada@example.com", "--data", '{"note": "a\\nb"}'
    )
    assert fine.exit_code == 0, fine.output


def test_an_absurd_duration_is_a_check_problem_and_events_still_record(project: Project) -> None:
    """`after: 99999999w` fails `check` with file:line; `event` leaves that campaign out with
    a warning and records the purchase instead of dying with OverflowError."""
    project.write(
        "campaigns/forever.yaml",
        "trigger: {event: purchase}\nsteps:\n  - id: later\n    after: 99999999w\n"
        "    subject: Hi\n    template: thank-you.mjml\n",
    )
    check = project.run("check")
    assert check.exit_code == 1
    assert re.search(
        r"campaigns/forever\.yaml:4: steps\[0\]\.after: .*longer than 100 years", check.output
    )
    result = project.run("--now", NOW, "event", "purchase", "ada@example.com")
    assert result.exit_code == 0, result.output
    assert "not planning for campaigns/forever.yaml" in result.output
    no_crash(result.output)


def test_a_lone_surrogate_in_a_campaign_is_a_problem_not_a_crash(project: Project) -> None:
    """`check` prints the problem (escaped) and exits 1."""
    project.write(
        "campaigns/odd.yaml",
        'trigger: {event: purchase}\n"\\ud800": 1\nsteps:\n'
        "  - {id: a, subject: Hi, template: thank-you.mjml}\n",
    )
    result = project.run("check")
    assert result.exit_code == 1
    assert "campaigns/odd.yaml:2:" in result.output
    assert "not text" in result.output
    no_crash(result.output)


def test_check_refuses_what_run_would_refuse(project: Project) -> None:
    """Sandbox refusals at evaluation time and plain SMTP to a remote host fail `check`."""
    project.write(
        "campaigns/sneaky.yaml",
        'trigger: {when: "customer.__class__"}\nsteps:\n'
        "  - {id: a, subject: Hi, template: thank-you.mjml}\n",
    )
    project.write(
        "campaigns/greedy.yaml",
        'schedule: {every: 1w, starting: 2027-01-05}\naudience: "range(10**9)|list"\nsteps:\n'
        "  - {id: a, subject: Hi, template: thank-you.mjml}\n",
    )
    config = project.root / "config.toml"
    text = config.read_text()
    text = text.replace('kind = "file"', 'kind = "smtp"')
    text = text.replace('host = "localhost"', 'host = "smtp.example.com"')
    text = text.replace('security = "starttls"', 'security = "none"')
    config.write_text(text)
    result = project.run("check")
    assert result.exit_code == 1
    out = result.output
    assert "campaigns/sneaky.yaml:1: trigger.when:" in out
    assert "refused by the sandbox" in out
    assert "campaigns/greedy.yaml:2: audience:" in out
    assert "Range too big" in out
    assert 'security = "none" is refused for smtp.example.com' in out
    no_crash(out)


def test_check_names_a_misspelt_date_column_and_bad_sample_dates(project: Project) -> None:
    """`customer.brithday` gets a did-you-mean; a sample's 1990-02-30 is listed by address."""
    birthday = project.root / "campaigns" / "birthday.yaml"
    birthday.write_text(birthday.read_text().replace("customer.birthday ", "customer.brithday "))
    typo = project.run("check")
    assert typo.exit_code == 1
    assert "campaigns/birthday.yaml:6: trigger.date:" in typo.output
    assert "did you mean 'customer.birthday'?" in typo.output
    birthday.write_text(birthday.read_text().replace("customer.brithday ", "customer.birthday "))
    samples = project.root / "customers.csv"
    samples.write_text(
        samples.read_text()
        .replace("1815-12-10", "1815-02-30")
        .replace("1906-12-09", "09/12/1906")
    )
    dates = project.run("check")
    assert dates.exit_code == 0, dates.output
    assert "2 customer(s) have a 'customer.birthday' that is not a date" in dates.output
    assert "ada@example.com (line 2): '1815-02-30' is not a date" in dates.output
    assert "grace@example.com (line 3): '09/12/1906' is not a date" in dates.output


def test_the_scaffold_leap_day_birthday_is_greeted_on_feb_28(project: Project) -> None:
    """Zoë's 1992-02-29 birthday: `simulate` shows the greeting on 2027-02-28, as the README
    promises."""
    imported = project.run("--now", "2027-01-02T12:00:00Z", "customers", "import", "customers.csv")
    assert imported.exit_code == 0, imported.output
    result = project.run(
        "--now",
        "2027-02-20T00:00:00Z",
        "simulate",
        "--days",
        "20",
        "--customer",
        "zoe@example.com",
        "--json",
    )
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.stdout)
    greetings = [row for row in timeline["sends"] if row["campaign"] == "birthday"]
    assert len(greetings) == 1
    assert greetings[0]["at"].startswith("2027-02-28")


def test_preview_refuses_a_variant_the_step_does_not_have(project: Project) -> None:
    """Two subjects: --variant 5 is an error naming the range, not a silent wrap."""
    result = project.run("preview", "welcome", "second-sale", "--variant", "5", "--format", "text")
    assert result.exit_code == 2
    assert "has 2 subject(s), so a variant from 0 to 1" in result.output
    assert project.run("preview", "welcome", "second-sale", "--variant", "1").exit_code == 0


def test_resume_names_an_unknown_campaign(project: Project) -> None:
    """`resume nope` says there is no such campaign; `resume welcome` that it is not paused."""
    unknown = project.run("resume", "nope")
    assert unknown.exit_code == 2
    assert "no campaign named 'nope'" in unknown.output
    known = project.run("resume", "welcome")
    assert known.exit_code == 2
    assert "campaign 'welcome' is not paused" in known.output


def test_the_no_edition_left_warning_is_printed_once(project: Project) -> None:
    """With three editions, the fourth run warns once, not twice (a real process: the
    second copy came through logging, which CliRunner does not capture)."""
    import os
    import subprocess
    import sys

    program = str(Path(sys.executable).parent / "dripper")
    env = {**os.environ, "DRIPPER_SECRET": "hostile-input-secret-0123"}

    def dripper(*args: str) -> str:
        done = subprocess.run(
            [program, "--config", str(project.root / "config.toml"), *args],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return done.stdout + done.stderr

    for extra in sorted((project.root / "campaigns" / "newsletters").glob("*.md"))[3:]:
        extra.unlink()
    dripper("--now", "2027-01-02T12:00:00Z", "customers", "import", "customers.csv")
    for run_day in ("2027-01-05", "2027-02-16", "2027-03-30", "2027-05-11"):
        output = dripper("--now", f"{run_day}T18:00:00Z", "run", "--once")
    assert output.count("no edition left") == 1, output


def test_dry_run_says_would_send(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dry run's summary says what would be sent; its JSON says nothing was."""
    monkeypatch.setenv("DRIPPER_SECRET", "hostile-input-secret-0123")
    for address in ("ada@example.com", "grace@example.com"):
        assert project.run("--now", NOW, "event", "purchase", address).exit_code == 0
    result = project.run("--now", NOW, "run", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("would send 2")
    assert "2 sent" not in result.output
    report = json.loads(project.run("--now", NOW, "run", "--dry-run", "--json").stdout)
    assert (report["dry_run"], report["would_send"], report["sent"]) == (True, 2, 0)


def test_show_of_an_unsubscribed_customer_says_it_once(project: Project) -> None:
    """`(unsubscribed)`, not `(unsubscribed, suppressed (unsubscribed))`; a bounce says why."""
    assert project.run("customers", "add", "ada@example.com").exit_code == 0
    assert project.run("customers", "unsubscribe", "ada@example.com").exit_code == 0
    shown = project.run("customers", "show", "ada@example.com")
    assert "ada@example.com" in shown.output
    assert "(unsubscribed)" in shown.output
    assert "suppressed" not in shown.output.splitlines()[0]


def test_a_transactional_thank_you_goes_out_in_quiet_hours(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scaffold's thank-you is transactional: a purchase at 23:00 gets it at once, though
    quiet hours hold everything else."""
    monkeypatch.setenv("DRIPPER_SECRET", "hostile-input-secret-0123")
    config = project.root / "config.toml"
    config.write_text(
        config.read_text()
        .replace("quiet_hours = []", 'quiet_hours = ["21:00", "08:00"]')
        .replace('max_per_customer = ""', 'max_per_customer = "1/2d"')
    )
    night = "2027-01-04T23:00:00Z"
    assert project.run("--now", night, "event", "purchase", "sam@example.com").exit_code == 0
    result = project.run("--now", night, "run", "--once", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(d["campaign"], d["step"]) for d in report["deliveries"]] == [("welcome", "thank-you")]


def test_init_hints_name_a_command_that_runs(tmp_path: Path) -> None:
    """After `make demo` there is no `dripper` on PATH: the hints name the program that ran."""
    import os
    import subprocess
    import sys

    program = Path(sys.executable).parent / "dripper"
    target = tmp_path / "shop"
    result = subprocess.run(
        [str(program), "init", str(target)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    hint = next(line for line in result.stdout.splitlines() if "check" in line)
    command = hint.split("&&", 1)[1].split("#")[0].split()[0]
    assert command != "dripper"
    assert (target / command).resolve() == program.resolve() or Path(command) == program


def test_check_warns_when_real_mail_would_link_to_an_unreachable_serve(project: Project) -> None:
    """SMTP configured with the default base_url: two warnings (not https, loopback); an
    https public URL: none. The file transport never warns."""
    quiet = project.run("check")
    assert "base_url" not in quiet.output
    config = project.root / "config.toml"
    config.write_text(
        config.read_text()
        .replace('kind = "file"', 'kind = "smtp"')
        .replace('security = "starttls"', 'security = "none"')
    )
    loud = project.run("check")
    assert loud.exit_code == 0, loud.output
    assert "base_url = 'http://127.0.0.1:8080' is not https" in loud.output
    assert "points at this machine" in loud.output
    config.write_text(
        config.read_text().replace(
            'base_url = "http://127.0.0.1:8080"', 'base_url = "https://mail.acme.test"'
        )
    )
    assert "base_url" not in project.run("check").output
