"""Campaign operations through the real commands on each database (DESIGN 14): `dripper
campaigns` lists each campaign's kind, topic, state, waiting sends and last send; `pause`
holds a campaign's sends (nothing cancelled) and `resume` releases them; a deleted campaign
file holds its sends and keeps its history in `stats`, and its return releases them."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Project

T0 = "2027-01-04T15:00:00Z"
DAY15 = "2027-01-19T18:00:00Z"


@pytest.fixture
def buying(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Ada bought on day 0 and got her thank-you; the day-14 offer is planned."""
    monkeypatch.setenv("DRIPPER_SECRET", "campaign-ops-secret-0123456789")
    assert project.run("--now", T0, "customers", "import", "customers.csv").exit_code == 0
    assert project.run("--now", T0, "event", "purchase", "ada@example.com").exit_code == 0
    result = project.run("--now", T0, "run", "--once")
    assert "sent welcome/thank-you to ada@example.com" in result.output
    return project


def listed(project: Project) -> dict[str, dict[str, object]]:
    result = project.run("campaigns", "--json")
    assert result.exit_code == 0, result.output
    return {row["campaign"]: row for row in json.loads(result.output)}


def test_campaigns_lists_kind_topic_state_and_sends(buying: Project) -> None:
    """Every campaign with its kind and topic; welcome active with one send waiting."""
    rows = listed(buying)
    assert rows["welcome"]["kind"] == "event purchase"
    assert rows["value-newsletter"]["kind"] == "every 6w"
    assert rows["value-newsletter"]["topic"] == "news"
    assert rows["welcome"]["state"] == "active"
    assert rows["welcome"]["pending"] == 1
    assert str(rows["welcome"]["last_sent"]).startswith("2027-01-04T15:00")
    text = buying.run("campaigns").output
    assert "welcome" in text
    assert "event purchase" in text


def test_pause_holds_and_resume_releases(buying: Project) -> None:
    """Paused, the day-14 offer waits past its time (still planned, not cancelled);
    resumed, the next pass sends it."""
    result = buying.run("pause", "welcome")
    assert result.exit_code == 0, result.output
    assert "paused welcome" in result.output
    assert "already paused" in buying.run("pause", "welcome").output
    run = buying.run("--now", DAY15, "run", "--once")
    assert "second-sale" not in run.output
    assert listed(buying)["welcome"]["state"] == "paused"
    assert listed(buying)["welcome"]["pending"] == 1
    assert buying.run("resume", "welcome").exit_code == 0
    run = buying.run("--now", DAY15, "run", "--once")
    assert "sent welcome/second-sale to ada@example.com" in run.output


def test_pause_of_an_unknown_campaign(buying: Project) -> None:
    """`pause welcom`: exit 2, one line with the campaign it probably means."""
    result = buying.run("pause", "welcom")
    assert result.exit_code == 2
    assert "no campaign named 'welcom' (did you mean 'welcome'?)" in result.output


def test_a_deleted_file_holds_its_sends_and_keeps_its_history(buying: Project) -> None:
    """The file gone: the offer is held (not cancelled), `campaigns` says "no file",
    `stats` still shows the thank-you sent; the file back: the offer goes out."""
    path = buying.root / "campaigns" / "welcome.yaml"
    text = path.read_text()
    path.unlink()
    run = buying.run("--now", DAY15, "run", "--once")
    assert run.exit_code == 0, run.output
    assert "second-sale" not in run.output
    row = listed(buying)["welcome"]
    assert (row["state"], row["pending"]) == ("no file", 1)
    stats = json.loads(buying.run("--now", DAY15, "stats", "--json").output)
    welcome = next(c for c in stats["campaigns"] if c["campaign"] == "welcome")
    assert next(s for s in welcome["steps"] if s["step"] == "thank-you")["sent"] == 1
    path.write_text(text)
    run = buying.run("--now", DAY15, "run", "--once")
    assert "sent welcome/second-sale to ada@example.com" in run.output
    assert listed(buying)["welcome"]["state"] == "active"


WIN_BACK = """description: Come back, each time you drift away.
trigger:
  when: customer.drifting == 'yes'
  repeat: {repeat}
steps:
  - id: miss-you
    subject: We miss you
    template: vip.mjml
"""


def test_a_repeating_when_enrolls_each_time_it_starts_to_hold(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeat: true`: a customer who matches, stops, and matches again gets the campaign
    twice (`when:1`, `when:2`); without it, once. Matching for several passes in a row is
    one occurrence."""
    monkeypatch.setenv("DRIPPER_SECRET", "campaign-ops-secret-0123456789")
    for name, repeat in (("again", "true"), ("single", "false")):
        project.write(f"campaigns/{name}.yaml", WIN_BACK.format(repeat=repeat))
    moments = iter(f"2027-01-{day:02d}T12:00:00Z" for day in range(4, 20))
    sent: list[str] = []
    for drifting in ("yes", "yes", "no", "yes", "yes"):
        project.write("d.csv", f"email,drifting\nzoe@example.com,{drifting}\n")
        now = next(moments)
        assert project.run("--now", now, "customers", "import", "d.csv").exit_code == 0
        run = project.run("--now", next(moments), "run", "--once")
        assert run.exit_code == 0, run.output
        sent += [line.split()[1] for line in run.output.splitlines() if "sent " in line]
    mine = sorted(s for s in sent if s.endswith("/miss-you"))
    assert mine == ["again/miss-you", "again/miss-you", "single/miss-you"]
    shown = json.loads(project.run("customers", "show", "zoe@example.com", "--json").output)
    occurrences = sorted(
        (e["campaign"], e["occurrence"])
        for e in shown["enrollments"]
        if e["campaign"] in ("again", "single")
    )
    assert occurrences == [("again", "when:1"), ("again", "when:2"), ("single", "once")]


BROADCAST = """description: Valentine's day, once.
schedule: {{once: {day}}}
steps:
  - id: hearts
    send_at: "09:00"
    subject: For your valentine
    template: vip.mjml
"""


def test_a_broadcast_goes_out_once_on_its_date(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`schedule: {once: 2027-02-14}`: nothing before the day, every subscribed customer
    on it at 09:00 their time, nothing the days after."""
    monkeypatch.setenv("DRIPPER_SECRET", "campaign-ops-secret-0123456789")
    project.write("campaigns/valentine.yaml", BROADCAST.format(day="2027-02-14"))
    assert project.run("--now", T0, "customers", "import", "customers.csv").exit_code == 0
    sent: list[str] = []
    for now in ("2027-02-13T12:00:00Z", "2027-02-14T23:59:00Z", "2027-02-16T12:00:00Z"):
        run = project.run("--now", now, "run", "--once")
        assert run.exit_code == 0, run.output
        sent += [line for line in run.output.splitlines() if "valentine/hearts" in line]
        if now.startswith("2027-02-13"):
            assert sent == []
    subscribed = [
        line for line in (project.root / "customers.csv").read_text().splitlines()[1:] if line
    ]
    assert 0 < len(sent) <= len(subscribed)
    assert len(set(sent)) == len(sent)  # one each
    row = listed(project)["valentine"]
    assert row["kind"] == "once 2027-02-14"


def test_check_warns_of_a_past_broadcast_and_over_mailing(project: Project) -> None:
    """A broadcast dated two days ago: "it will never run"; four weekly-ish campaigns on one
    sample's first week: the over-mailing warning names the sample and the campaigns."""
    project.write("campaigns/old.yaml", BROADCAST.format(day="2027-01-02"))
    for n in range(3):
        project.write(
            f"campaigns/extra{n}.yaml",
            "trigger: {event: purchase}\nsteps:\n"
            f"  - {{id: s, after: {n + 1}d, subject: Hi, template: vip.mjml}}\n",
        )
    result = project.run("--now", T0, "check")
    assert "schedule.once 2027-01-02 is in the past: it will never run" in result.output
    assert "over-mailing:" in result.output
    line = next(x for x in result.output.splitlines() if "over-mailing:" in x)
    assert "extra0, extra1, extra2" in line
    assert "max_per_week = 3" in line


GUARDED = """trigger: {event: purchase}
steps:
  - id: note
    if: customer.vip_note is defined
    subject: A note for you
    template: note.html
"""


def test_check_renders_a_step_only_for_samples_it_could_reach(project: Project) -> None:
    """A step whose `if` no sample meets is not rendered (so the value it guards is no
    problem) and `check` says no sample reaches it; a template reading a value the
    samples lack names the sample and the fix."""
    project.write("templates/note.html", "<p>{{ customer.vip_note }} {{ unsubscribe_url }}</p>")
    project.write("campaigns/note.yaml", GUARDED)
    result = project.run("--now", T0, "check")
    assert result.exit_code == 0, result.output
    assert "step note: no sample customer would get it, so it was not rendered" in result.output
    project.write(
        "campaigns/note.yaml", GUARDED.replace("    if: customer.vip_note is defined\n", "")
    )
    result = project.run("--now", T0, "check")
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "vip_note" in x)
    assert "templates/note.html:1: customer.vip_note is undefined" in line
    assert "(for sample customer ada@example.com and 6 other(s): no value for" in line
    assert "customer.vip_note|default('')" in line


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_pause_and_resume_across_two_daemons(buying: Project) -> None:
    """Two daemons share a PostgreSQL database: while welcome is paused neither sends its
    day-14 offer; resumed, it goes out once, from one of them."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = buying.root
    config = root / "config.toml"
    config.write_text(config.read_text().replace("tick_seconds = 30", "tick_seconds = 1"))
    assert buying.run("pause", "welcome").exit_code == 0
    program = str(Path(sys.executable).parent / "dripper")
    env = {**os.environ, "DRIPPER_SECRET": "campaign-ops-secret-0123456789"}
    args = [program, "--config", str(config), "--now", DAY15, "run"]
    logs = [(root / f"daemon{n}.log").open("wb") for n in range(2)]
    daemons = [subprocess.Popen(args, env=env, stdout=log, stderr=log) for log in logs]

    try:
        time.sleep(3)
        assert listed(buying)["welcome"]["pending"] == 1
        assert buying.run("resume", "welcome").exit_code == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and listed(buying)["welcome"]["pending"]:
            time.sleep(0.2)
        assert listed(buying)["welcome"]["pending"] == 0
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            assert daemon.wait(timeout=60) == 0
        for log in logs:
            log.close()
    shown = json.loads(buying.run("customers", "show", "ada@example.com", "--json").output)
    offers_sent = [
        s for s in shown["sends"] if s["step"] == "second-sale" and s["status"] == "sent"
    ]
    assert len(offers_sent) == 1  # one daemon claimed it: no second copy
