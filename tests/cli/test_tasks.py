"""Tasks for a person (DESIGN 16) through the real commands and daemon passes (`--now`) on
each database: a task step makes one task when it falls due, `dripper tasks` lists it
overdue first, `tasks done/skip` close it, an email unsubscribe spares it, a complaint or
`forget` ends it, the morning digest goes once a day in the person's language."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

from dripper.store import open_store
from dripper.store.records import SuppressionReason
from tests.cli.conftest import Project

T0 = "2027-01-04T10:00:00Z"
SECRET = {"DRIPPER_SECRET": "tasks-tests-secret-0123456789"}


def run(project: Project, now: str, *args: str) -> str:
    """`dripper --now NOW ARGS`, which must succeed; its output."""
    result = project.runner.invoke(
        __import__("dripper.cli", fromlist=["cli"]).cli,
        ["--config", str(project.root / "config.toml"), "--now", now, *args],
        env=SECRET,
    )
    assert result.exit_code == 0, result.output
    return result.output


def third_purchase(project: Project) -> None:
    run(project, T0, "customers", "add", "ada@example.com", "--first-name", "Ada")
    for day in ("04", "05", "06"):
        at = f"2027-01-{day}T10:00:00Z"
        run(project, at, "event", "purchase", "ada@example.com", "--data", '{"amount": 20}')


def listed(project: Project, now: str, *args: str) -> list[dict[str, object]]:
    found = json.loads(run(project, now, "tasks", "--json", *args))
    assert isinstance(found, list)
    return found


def emails(project: Project) -> list[EmailMessage]:
    found = []
    for path in sorted((project.root / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def test_a_task_step_makes_one_task_listed_and_closed(project: Project) -> None:
    """The card task of the third purchase is made when it falls due (a day later), once
    however often the daemon passes, rendered for the customer; `tasks` lists it (and
    overdue once past its 3 days); `done --note` closes it and the sheet shows the note;
    closing it again or an unknown id: exit 2, nothing changed; stats counts it."""
    third_purchase(project)
    run(project, "2027-01-06T12:00:00Z", "run", "--once")
    assert listed(project, "2027-01-06T12:00:00Z") == []  # due tomorrow
    out = run(project, "2027-01-07T11:00:00Z", "run", "--once")
    assert "1 task(s)" in out
    run(project, "2027-01-07T11:30:00Z", "run", "--once")
    tasks = listed(project, "2027-01-07T12:00:00Z")
    assert len(tasks) == 1
    task = tasks[0]
    assert task["text"] == "Handwritten card to Ada: 3 orders, loves our coffee"
    assert (task["assignee"], task["customer"]) == ("owner", "ada@example.com")
    assert (task["campaign"], task["step"], task["overdue"]) == ("thank-you-card", "card", False)
    assert listed(project, "2027-01-11T12:00:00Z")[0]["overdue"] is True
    shown = run(project, "2027-01-11T12:00:00Z", "tasks")
    assert "OVERDUE" in shown
    assert "Handwritten card to Ada" in shown

    done = run(
        project,
        "2027-01-11T12:00:00Z",
        "tasks",
        "done",
        str(task["id"]),
        "--note",
        "Posted",
    )
    assert "done" in done
    assert listed(project, "2027-01-11T12:00:00Z") == []
    closed = listed(project, "2027-01-11T12:00:00Z", "--all")
    assert (closed[0]["status"], closed[0]["note"]) == ("done", "Posted")
    again = project.run("tasks", "done", str(task["id"]))
    assert again.exit_code == 2
    assert "already done" in again.output
    unknown = project.run("tasks", "skip", "999")
    assert unknown.exit_code == 2
    assert "no such task" in unknown.output
    sheet = json.loads(project.run("customers", "show", "ada@example.com", "--json").output)
    assert [(t["status"], t["note"]) for t in sheet["tasks"]] == [("done", "Posted")]
    assert "Posted" in project.run("customers", "show", "ada@example.com").output

    stats = json.loads(run(project, "2027-01-11T12:00:00Z", "stats", "--json"))
    row = next(r for r in stats["tasks"] if r["campaign"] == "thank-you-card")
    assert (row["created"], row["done"], row["skipped"], row["overdue"]) == (1, 1, 0, 0)
    # A task step is no email: no funnel row, nothing in the outbox folder for Ada's card.
    names = {c["campaign"] for c in stats["campaigns"]}
    assert "thank-you-card" not in names


def poor_answer(project: Project, address: str) -> None:
    run(project, T0, "customers", "add", address, "--first-name", "Grace")
    run(project, T0, "event", "purchase", address, "--data", '{"amount": 20}')
    data = '{"question": "first_bag", "answer": "poor"}'
    run(project, "2027-01-05T09:00:00Z", "event", "feedback", address, "--data", data)


def test_an_unsubscribe_spares_the_task_and_a_complaint_ends_it(project: Project) -> None:
    """A customer who answered "poor" and then unsubscribed from email still gets their
    call (the task says they left the emails) while the apology email is cancelled; a
    complaint cancels what is planned and closes what is open; `forget` erases tasks."""
    poor_answer(project, "grace@example.com")
    run(project, "2027-01-05T09:01:00Z", "customers", "unsubscribe", "grace@example.com")
    run(project, "2027-01-05T12:00:00Z", "run", "--once")
    tasks = listed(project, "2027-01-05T12:00:00Z")
    assert [t["step"] for t in tasks] == ["call"]
    assert tasks[0]["unsubscribed_from_email"] is True
    assert "(unsubscribed from email)" in run(project, "2027-01-05T12:00:00Z", "tasks")
    sheet = json.loads(project.run("customers", "show", "grace@example.com", "--json").output)
    apology = [s for s in sheet["sends"] if s["campaign"] == "feedback-follow-up"]
    assert [s["status"] for s in apology] == ["cancelled"]

    poor_answer(project, "linus@example.com")
    store = open_store(project_db(project))
    try:
        store.suppress(
            "grace@example.com",
            reason=SuppressionReason.COMPLAINED,
            now=__import__("datetime").datetime(2027, 1, 5, 13, tzinfo=__import__("datetime").UTC),
        )
        store.suppress(
            "linus@example.com",
            reason=SuppressionReason.COMPLAINED,
            now=__import__("datetime").datetime(
                2027, 1, 5, 9, 30, tzinfo=__import__("datetime").UTC
            ),
        )
    finally:
        store.close()
    run(project, "2027-01-05T14:00:00Z", "run", "--once")
    assert listed(project, "2027-01-05T14:00:00Z") == []  # Grace's closed, Linus's never made
    every = listed(project, "2027-01-05T14:00:00Z", "--all")
    assert [(t["customer"], t["status"]) for t in every] == [("grace@example.com", "cancelled")]
    linus = json.loads(project.run("customers", "show", "linus@example.com", "--json").output)
    call = [s for s in linus["sends"] if s["campaign"] == "unhappy-call"]
    assert [s["status"] for s in call] == ["cancelled"]
    assert project.run("customers", "forget", "grace@example.com", "--yes").exit_code == 0
    assert listed(project, "2027-01-05T14:00:00Z", "--all") == []


def project_db(project: Project) -> str:
    text = (project.root / "config.toml").read_text()
    return (
        text.split('url = "', 1)[1]
        .split('"', 1)[0]
        .replace("sqlite:///dripper.db", f"sqlite:///{project.root / 'dripper.db'}")
    )


def test_the_morning_digest_once_a_day_in_the_persons_language(project: Project) -> None:
    """Before digest_at nothing; from it, one email per person with open tasks, in their
    language, each task with its one-click link; a second pass that day sends nothing; a
    person with nothing open gets nothing."""
    config = project.root / "config.toml"
    config.write_text(
        config.read_text().replace(
            'people = {owner = "owner@acme.test"}',
            'people = {owner = {email = "ana@acme.test", language = "de", name = "Ana"}, '
            'helper = "bo@acme.test"}',
        )
    )
    poor_answer(project, "grace@example.com")
    run(project, "2027-01-05T07:30:00Z", "run", "--once")
    digests = [m for m in emails(project) if "acme.test" in str(m["To"])]
    assert digests == []  # the task is made, but it is 07:30 (digest_at is 08:00 UTC)
    out = run(project, "2027-01-05T09:00:00Z", "run", "--once")
    assert "1 digest(s)" in out
    run(project, "2027-01-05T10:00:00Z", "run", "--once")
    digests = [m for m in emails(project) if "acme.test" in str(m["To"])]
    assert len(digests) == 1
    digest = digests[0]
    assert str(digest["To"]) == "ana@acme.test"
    assert str(digest["Subject"]) == "Ihre Aufgaben heute: 1 offen"
    body = digest.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Guten Morgen, Ana" in text
    assert "Call Grace: the first bag was poor" in text
    assert "http://127.0.0.1:8080/t/" in text
    # The next day the open task comes again, now overdue (due within 1d).
    run(project, "2027-01-06T09:30:00Z", "run", "--once")
    later = [m for m in emails(project) if "acme.test" in str(m["To"])]
    assert len(later) == 2
    subjects = sorted(str(m["Subject"]) for m in later)
    assert subjects == [
        "Ihre Aufgaben heute: 1 offen",
        "Ihre Aufgaben heute: 1 offen · 1 überfällig",
    ]


def test_check_and_run_refuse_a_task_config_does_not_know(project: Project) -> None:
    """An assignee not in [tasks] people, a task that does not render, a webhook host not
    allowed: check names each by file:line (exit 1), run refuses to start, nothing sent."""
    project.write(
        "campaigns/broken-task.yaml",
        "description: x\n"
        "trigger: {event: purchase}\n"
        "steps:\n"
        "  - id: card\n"
        '    task: "Card for {{ customer.first_name|nosuchfilter }}"\n'
        "    assignee: nobody\n"
        "  - id: hook\n"
        "    after: 1d\n"
        '    webhook: {url: "https://evil.example/x", body: {a: "{{ customer.email }}"}}\n',
    )
    checked = project.run("check", "--no-spamassassin")
    assert checked.exit_code == 1
    out = checked.output
    assert "campaigns/broken-task.yaml:6: steps.card.assignee: no 'nobody' in [tasks] people" in out
    assert "broken-task.yaml:9: steps.hook.webhook.url: host evil.example is not in" in out
    assert "broken-task.yaml:4: steps.card.task:" in out
    assert "nosuchfilter" in out
    started = project.runner.invoke(
        __import__("dripper.cli", fromlist=["cli"]).cli,
        ["--config", str(project.root / "config.toml"), "--now", T0, "run", "--once"],
        env=SECRET,
    )
    assert started.exit_code == 1
    assert "no 'nobody' in [tasks] people" in started.output
    project.write(
        "campaigns/broken-task.yaml",
        "description: x\n"
        "trigger: {event: purchase}\n"
        "steps:\n"
        "  - id: card\n"
        '    task: "Card {% if %}"\n'
        "    subject: Hi\n",
    )
    loaded = project.run("check", "--no-spamassassin")
    assert loaded.exit_code == 1
    assert "broken-task.yaml:5: steps[0].task: task does not compile" in loaded.output
    assert "broken-task.yaml:6: steps[0].subject: a task step has no 'subject'" in loaded.output
