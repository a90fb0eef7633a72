"""`check` for the steps that are not emails (DESIGN 16): each task's text and each
webhook's body rendered for the samples that would reach the step (a failure is a problem
at the step's line), the assignees and the webhook hosts against config.toml, and a warning
when webhooks would go unsigned."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dripper.errors import DripperError, Problem

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Step
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.engine.model import EventFacts
    from dripper.render.renderer import Renderer


def config_problems(config: Config, campaigns: Sequence[Campaign]) -> list[Problem]:
    from dripper.campaigns.personal import personal_problems

    return personal_problems(campaigns, config.tasks, config.webhooks)


def config_warnings(config: Config, campaigns: Sequence[Campaign]) -> list[str]:
    hooks = [c for c in campaigns if any(s.kind == "webhook" for s in c.steps)]
    env = config.webhooks.secret_env
    if hooks and not config.secret(env):
        return [
            f"{hooks[0].file}: webhook steps are signed with the secret in the environment "
            f"variable {env} ([webhooks] secret_env), which is not set here: set it where "
            "the daemon runs, or they wait unsent"
        ]
    return []


def render_problems(
    renderer: Renderer,
    campaign: Campaign,
    step: Step,
    samples: Sequence[Customer],
    *,
    now: datetime,
    event: EventFacts | None,
) -> list[Problem]:
    """A task step's text, or every string of a webhook step's body, for each sample."""
    sources = step.personal_sources
    what = "task" if step.kind == "task" else "webhook body"
    found: list[Problem] = []
    for customer in samples:
        for source in sources:
            try:
                renderer.text_of(campaign, step, customer, source, now=now, event=event, what=what)
            except DripperError as exc:
                problem = Problem(
                    campaign.file,
                    step.line,
                    f"steps.{step.id}.{step.kind}",
                    f"{exc} (sample {customer.email})",
                )
                if all(p.message != problem.message for p in found):
                    found.append(problem)
    return found
