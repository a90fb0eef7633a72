"""What a task or a webhook step needs of config.toml (DESIGN 16): its assignee among
`[tasks] people`, its webhook's host among `[webhooks] allowed_hosts` and https unless the
host is a listed loopback address. Pure: the campaigns and the settings in, problems out;
`check` reports them and the daemon takes no version that has one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dripper.errors import Problem

if TYPE_CHECKING:
    from dripper.campaigns.model import Campaign
    from dripper.settings_personal import TasksSettings, WebhooksSettings


def personal_problems(
    campaigns: Sequence[Campaign], tasks: TasksSettings, webhooks: WebhooksSettings
) -> list[Problem]:
    """Every task step's assignee and every webhook step's URL, against the settings."""
    found: list[Problem] = []
    people = [p.key for p in tasks.people]
    for campaign in campaigns:
        for step in campaign.steps:
            where = f"steps.{step.id}"
            if step.kind == "task":
                if not people:
                    found.append(
                        Problem(
                            campaign.file,
                            step.line,
                            f"{where}.task",
                            "no one to give the task to: add [tasks] people = "
                            '{owner = "you@your-shop.example"} to config.toml',
                        )
                    )
                elif step.assignee is not None and step.assignee not in people:
                    found.append(
                        Problem(
                            campaign.file,
                            step.assignee_line or step.line,
                            f"{where}.assignee",
                            f"no {step.assignee!r} in [tasks] people of config.toml "
                            f"(known: {', '.join(people)})",
                        )
                    )
            elif step.webhook is not None:
                wrong = host_problem(step.webhook.url, webhooks.allowed_hosts)
                if wrong is not None:
                    found.append(
                        Problem(campaign.file, step.webhook.line, f"{where}.webhook.url", wrong)
                    )
    return found


def host_problem(url: str, allowed: Sequence[str]) -> str | None:
    """Whether a webhook URL may be used at all, before any name is resolved: its host is
    listed, and it is https unless the host is a loopback address that is listed."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if host not in allowed:
        listed = ", ".join(allowed) if allowed else "none yet"
        return (
            f"host {host} is not in [webhooks] allowed_hosts of config.toml (listed: {listed}); "
            "add it there if it is yours to call"
        )
    if parts.scheme != "https" and not is_loopback(host):
        return f"use https:// for {host}: plain http is only for a listed loopback address"
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
