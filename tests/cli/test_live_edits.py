"""Editing a project while `dripper run` runs (DESIGN 14), with a real daemon process on
each database: a changed subject and template are switched to together between passes
(never the old subject with the new body); a broken campaign file keeps the last good
version sending and is reported once."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

from tests.cli.conftest import Project

PROGRAM = str(Path(sys.executable).parent / "dripper")
ENV = {**os.environ, "DRIPPER_SECRET": "live-edits-secret-0123456789"}
NOW = "2027-01-04T15:00:00Z"


def emails_to(root: Path, address: str) -> list[EmailMessage]:
    found = []
    for path in (root / "outbox").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if address in str(message["To"]):
            found.append(message)
    return found


def wait_for(root: Path, address: str, seconds: float = 30) -> EmailMessage:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = emails_to(root, address)
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no email to {address}: {(root / 'daemon.log').read_text()[-2000:]}")


def text_of(message: EmailMessage) -> str:
    return "\n".join(
        str(part.get_content())
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )


def test_edits_while_running_are_one_version(project: Project) -> None:
    """Ada's thank-you: the old subject and body. The subject and the template edited;
    Grace's: both new. A broken campaign file: Linus's thank-you still goes out with the
    last good version, and the problem is logged once however many passes see it."""
    root = project.root
    config = root / "config.toml"
    config.write_text(config.read_text().replace("tick_seconds = 30", "tick_seconds = 1"))
    assert project.run("--now", NOW, "customers", "import", "customers.csv").exit_code == 0
    assert project.run("--now", NOW, "event", "purchase", "ada@example.com").exit_code == 0
    log = (root / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [PROGRAM, "--config", str(config), "--now", NOW, "run"], env=ENV, stdout=log, stderr=log
    )
    try:
        ada = wait_for(root, "ada@example.com")
        assert "Thank you" in str(ada["Subject"])
        campaign = root / "campaigns" / "welcome.yaml"
        template = root / "templates" / "thank-you.mjml"
        text = campaign.read_text()
        old_subject = next(line for line in text.splitlines() if "subject:" in line)
        campaign.write_text(text.replace(old_subject, '    subject: "Fresh subject"', 1))
        template.write_text(template.read_text().replace("Your first order", "Fresh body", 1))
        time.sleep(2.5)  # a pass or two: the daemon switches between them
        assert project.run("--now", NOW, "event", "purchase", "grace@example.com").exit_code == 0
        grace = wait_for(root, "grace@example.com")
        assert str(grace["Subject"]) == "Fresh subject"
        assert "Fresh body" in text_of(grace)
        (root / "campaigns" / "broken.yaml").write_text("trigger: {event: purchase\n")
        time.sleep(3.5)  # three passes or so see the broken folder
        assert project.run("--now", NOW, "event", "purchase", "linus@example.com").exit_code == 0
        linus = wait_for(root, "linus@example.com")
        assert str(linus["Subject"]) == "Fresh subject"
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        log.close()
    output = (root / "daemon.log").read_text()
    assert output.count("the campaign folder has problems") == 1
    assert "broken.yaml" in output
