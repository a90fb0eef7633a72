"""Finding what to preview (campaign, step, edition, sample customer) and rendering it,
with one clear error for anything that is not there."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dripper.errors import InputError

if TYPE_CHECKING:
    from dripper.campaigns import Campaign, Edition, Step
    from dripper.config import Config
    from dripper.customers.model import Customer
    from dripper.errors import Problem
    from dripper.render.model import RenderedEmail
    from dripper.render.renderer import Renderer


@dataclass
class Project:
    """The campaigns, their load problems and the sample customers of one project."""

    config: Config
    campaigns: list[Campaign]
    problems: list[Problem]
    samples: list[Customer]

    @classmethod
    def load(cls, config: Config, *, now: datetime) -> Project:
        from dripper.campaigns import load_campaigns
        from dripper.preview.samples import load_samples

        campaigns, problems = load_campaigns(
            config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
        )
        return cls(
            config, list(campaigns), list(problems), load_samples(config.samples_path, now=now)
        )

    def campaign(self, name: str) -> Campaign:
        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign
        broken = [p for p in self.problems if Path(p.file).stem == name]
        if broken:
            raise InputError(f"campaign {name!r} has problems: {broken[0]}")
        names = [c.name for c in self.campaigns]
        raise InputError(f"no campaign {name!r}{_did_you_mean(name, names, 'campaigns')}")

    def step(self, campaign: Campaign, step_id: str | None) -> Step:
        if step_id is None:
            return campaign.steps[0]
        found = campaign.step(step_id)
        if found is None:
            ids = [s.id for s in campaign.steps]
            raise InputError(
                f"campaign {campaign.name!r} has no step {step_id!r}"
                f"{_did_you_mean(step_id, ids, 'steps')}"
            )
        return found

    def edition(self, campaign: Campaign, slug: str | None) -> Edition | None:
        if not campaign.editions:
            if slug is not None:
                raise InputError(f"campaign {campaign.name!r} has no editions")
            return None
        if slug is None:
            return campaign.editions[0]
        found = campaign.edition(slug)
        if found is None:
            slugs = [e.slug for e in campaign.editions]
            raise InputError(
                f"campaign {campaign.name!r} has no edition {slug!r}"
                f"{_did_you_mean(slug, slugs, 'editions')}"
            )
        return found

    def customer(self, email: str | None) -> Customer:
        from dripper.preview.samples import find_sample

        if email is None:
            return self.samples[0]
        found = find_sample(self.samples, email)
        if found is None:
            found = _stored_customer(self.config, email)
        if found is None:
            emails = [c.email for c in self.samples]
            raise InputError(
                f"no customer {email!r} in {self.config.samples_path.name} or the database"
                f"{_did_you_mean(email, emails, 'samples')}"
            )
        return found


def render(
    renderer: Renderer,
    campaign: Campaign,
    step: Step,
    customer: Customer,
    *,
    now: datetime,
    edition: Edition | None = None,
    variant: int | None = None,
) -> RenderedEmail:
    """The complete email, as the daemon would build it (its subject variant by default),
    with the campaign's sample event where an event enrolls its customers."""
    from dripper.campaigns.samplecheck import sample_event
    from dripper.engine.plan import variant_for

    if step.personal:
        raise InputError(
            f"{campaign.name}/{step.id} is a {step.kind} step, not an email: "
            f"`dripper preview {campaign.name} {step.id}` shows what it makes"
        )
    count = len(step.subjects)
    if variant is None:
        variant = variant_for(customer.email, campaign.name, step.id, count)
    elif not 0 <= variant < count:
        raise InputError(
            f"--variant {variant}: {campaign.name}/{step.id} has {count} subject(s), "
            f"so a variant from 0 to {count - 1}"
        )
    return renderer.render(
        campaign,
        step,
        customer,
        now=now,
        message_id=renderer.new_message_id(),
        variant=variant,
        edition=edition,
        event=sample_event(campaign, now),
    )


def personal_preview(
    renderer: Renderer, campaign: Campaign, step: Step, customer: Customer, *, now: datetime
) -> str:
    """What a task step would put on a person's list, or what a webhook step would POST,
    for `customer` (DESIGN 16): nothing is made or sent."""
    import json

    from dripper.campaigns.personal_steps import DEFAULT_DUE
    from dripper.campaigns.samplecheck import sample_event

    event = sample_event(campaign, now)
    if step.webhook is not None:
        from dripper.services.personal import webhook_body

        body = webhook_body(renderer, campaign, step, customer, now=now, event=event)
        shown = json.dumps(body, indent=2, ensure_ascii=False)
        return f"POST {step.webhook.url} (signed, X-Dripper-Signature)\n{shown}"
    person = renderer.config.tasks.person(step.assignee)
    who = person.key if person else f"{step.assignee or 'nobody'} (not in [tasks] people)"
    due = step.due or DEFAULT_DUE
    text = renderer.text_of(campaign, step, customer, step.task or "", now=now, event=event)
    return f"task for {who} about {customer.email}, due {due} after it is made:\n  {text}"


def _stored_customer(config: Config, email: str) -> Customer | None:
    """A customer from the database, if there is one (only then is the store loaded)."""
    from dripper.store.engine import parse_url

    url = parse_url(config.database_url)
    if url.drivername.startswith("sqlite") and not Path(url.database or "").is_file():
        return None
    from dripper.store import open_store
    from dripper.store.customers import get_customer

    store = open_store(config.database_url)
    try:
        store.ensure_schema()
        with store.reading() as conn:
            return get_customer(conn, email.strip().lower())
    finally:
        store.close()


def _did_you_mean(name: str, choices: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({what}: {', '.join(choices)})" if choices else ""
