"""Webhook steps (DESIGN 16) through real daemon passes (`--now`) on each database, against
a real local HTTP receiver: the rendered body POSTed as JSON and signed (the signature
verified here), the outcome recorded like a send; a 500 or a silence retried until
give-up; a redirect never followed; a name that resolves to a loopback address that is
not listed refused before anything is sent."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from click.testing import Result

from dripper.cli import cli
from tests.cli.conftest import Project
from tests.support.receiver import Receiver

T0 = "2027-01-04T10:00:00Z"
HOOK_SECRET = "webhook-tests-secret-0123456789"
ENV = {"DRIPPER_SECRET": "tasks-tests-secret-0123456789", "DRIPPER_WEBHOOK_SECRET": HOOK_SECRET}


def invoke(project: Project, now: str, *args: str) -> Result:
    return project.runner.invoke(
        cli, ["--config", str(project.root / "config.toml"), "--now", now, *args], env=ENV
    )


def ok(project: Project, now: str, *args: str) -> str:
    result = invoke(project, now, *args)
    assert result.exit_code == 0, result.output
    return result.output


def postcard(project: Project, url: str, allowed: list[str], timeout: int = 10) -> None:
    """A campaign that hands a postcard to a printer the day after a first purchase."""
    project.write(
        "campaigns/postcard.yaml",
        "description: A postcard from the roastery after the first order.\n"
        "trigger: {event: purchase, if: customer.purchases == 1}\n"
        "steps:\n"
        "  - id: print\n"
        "    webhook:\n"
        f"      url: {json.dumps(url)}\n"
        "      body:\n"
        '        to: "{{ customer.first_name }} {{ customer.last_name }}"\n'
        '        message: "Thank you for your first order, {{ customer.first_name }}!"\n'
        "        size: A6\n"
        "        copies: 1\n",
    )
    config = project.root / "config.toml"
    config.write_text(
        config.read_text()
        .replace("allowed_hosts = []", f"allowed_hosts = {json.dumps(allowed)}")
        .replace("timeout = 10 ", f"timeout = {timeout} ")
    )
    ok(
        project,
        T0,
        "customers",
        "add",
        "ada@example.com",
        "--first-name",
        "Ada",
        "--last-name",
        "Lovelace",
    )
    ok(project, T0, "event", "purchase", "ada@example.com", "--data", '{"amount": 20}')


def failing_pass(project: Project, now: str) -> str:
    """A pass in which a send failed: `run --once` says so with exit code 1."""
    result = invoke(project, now, "run", "--once")
    assert result.exit_code == 1, result.output
    assert "1 failed" in result.output
    return result.output


def send_of(project: Project) -> dict[str, Any]:
    sheet = json.loads(project.run("customers", "show", "ada@example.com", "--json").output)
    found = [s for s in sheet["sends"] if s["campaign"] == "postcard"]
    assert len(found) == 1
    return dict(found[0])


def test_a_webhook_is_posted_signed_and_recorded(project: Project) -> None:
    """The body, rendered for the customer, arrives as JSON with a valid HMAC-SHA256 of
    its bytes in X-Dripper-Signature and the delivery id; the send is recorded sent and
    `stats` counts it delivered; a later pass posts nothing more."""
    with Receiver() as hook:
        postcard(project, hook.url, ["127.0.0.1"])
        out = ok(project, "2027-01-04T10:05:00Z", "run", "--once")
        assert "1 webhook(s)" in out
        ok(project, "2027-01-04T10:10:00Z", "run", "--once")
        assert len(hook.requests) == 1
        request = hook.requests[0]
    assert request.path == "/hook"
    assert json.loads(request.body) == {
        "to": "Ada Lovelace",
        "message": "Thank you for your first order, Ada!",
        "size": "A6",
        "copies": 1,
    }
    assert request.headers["content-type"] == "application/json"
    expected = hmac.new(HOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-dripper-signature"], expected)
    assert request.headers["x-dripper-delivery"]
    assert request.headers["host"] == f"127.0.0.1:{hook.port}"
    send = send_of(project)
    assert (send["status"], send["attempts"]) == ("sent", 1)
    stats = json.loads(ok(project, "2027-01-05T10:00:00Z", "stats", "--json"))
    assert stats["webhooks"] == [
        {"campaign": "postcard", "step": "print", "delivered": 1, "retrying": 0,
         "failed": 0, "cancelled": 0, "skipped": 0}
    ]  # fmt: skip


def test_a_failing_webhook_is_retried_then_fails_with_the_reason(project: Project) -> None:
    """A 500 is retried on [sending] retry with the same delivery id, and after
    give_up_after (3d) the send fails with the receiver's words; a receiver that does not
    answer within [webhooks] timeout is a retry too."""
    with Receiver(status=500, answer=b"printer jammed") as hook:
        postcard(project, hook.url, ["127.0.0.1"])
        ok(project, "2027-01-04T10:05:00Z", "run", "--once")
        send = send_of(project)
        assert (send["status"], send["attempts"]) == ("planned", 1)
        assert "500" in send["reason"]
        assert "printer jammed" in send["reason"]
        ok(project, "2027-01-04T10:40:00Z", "run", "--once")  # after the 5m retry
        failing_pass(project, "2027-01-07T11:00:00Z")  # past give-up
        assert len(hook.requests) == 3
        assert len({r.headers["x-dripper-delivery"] for r in hook.requests}) == 1
    send = send_of(project)
    assert send["status"] == "failed"
    assert send["reason"].startswith("gave up after 3 days")
    assert "printer jammed" in send["reason"]


def test_a_silent_receiver_times_out_and_is_retried(project: Project) -> None:
    """A receiver that holds the request past [webhooks] timeout: deferred, never hung."""
    with Receiver(delay=4) as hook:
        postcard(project, hook.url, ["127.0.0.1"], timeout=1)
        ok(project, "2027-01-04T10:05:00Z", "run", "--once")
    send = send_of(project)
    assert (send["status"], send["attempts"]) == ("planned", 1)
    assert "no answer within 1s" in send["reason"]


def test_a_redirect_is_never_followed(project: Project) -> None:
    """A 302 to a private address fails the send naming where it pointed; nothing else
    is requested."""
    with Receiver(status=302, location="http://10.0.0.1/steal") as hook:
        postcard(project, hook.url, ["127.0.0.1"])
        failing_pass(project, "2027-01-04T10:05:00Z")
        assert len(hook.requests) == 1
    send = send_of(project)
    assert send["status"] == "failed"
    assert "redirect to http://10.0.0.1/steal not followed" in send["reason"]


def test_a_name_resolving_to_loopback_is_refused_unless_its_address_is_listed(
    project: Project,
) -> None:
    """`localhost` listed, but not the loopback address it resolves to: refused after
    resolution, nothing posted; an unlisted host is refused by check and by run."""
    with Receiver() as hook:
        postcard(project, f"http://localhost:{hook.port}/hook", ["localhost"])
        failing_pass(project, "2027-01-04T10:05:00Z")
        assert hook.requests == []
    send = send_of(project)
    assert send["status"] == "failed"
    assert "refused: localhost resolves to" in send["reason"]
    assert "(loopback), which is not listed in [webhooks] allowed_hosts" in send["reason"]

    config = project.root / "config.toml"
    config.write_text(
        config.read_text().replace('allowed_hosts = ["localhost"]', "allowed_hosts = []")
    )
    checked = project.run("check", "--no-spamassassin")
    assert checked.exit_code == 1
    assert "postcard.yaml:5: steps.print.webhook.url: host localhost is not in" in checked.output
    refused = invoke(project, "2027-01-04T10:05:00Z", "run", "--once")
    assert refused.exit_code == 1
    assert "host localhost is not in" in refused.output
