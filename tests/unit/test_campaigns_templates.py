"""The shipped MJML templates render for every step of every example campaign."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from mjml import mjml2html

from dripper.campaigns import Campaign, Edition, Step, load_campaigns
from dripper.customers.model import Customer, Status

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
TEMPLATES = SCAFFOLD / "templates"
UNSUBSCRIBE = "https://acme.test/u/Zm9vYmFy"
ADDRESS = "1 Roastery Lane, Portland, OR 97201, USA"


def _customer(first_name: str, **attributes: Any) -> Customer:
    return Customer(
        id=1,
        email="ada@example.com",
        first_name=first_name,
        last_name="",
        timezone=None,
        locale=None,
        tags=(),
        attributes=attributes,
        status=Status.SUBSCRIBED,
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
        purchases=1,
        total_spent=Decimal("24.00"),
    )


# A customer with every optional column filled in, and one with none (not even a first name):
# templates must guard what may be missing.
CUSTOMERS = {
    "full": _customer("Ada", birthday=date(1815, 12, 10), favorite_coffee="Kenya AA"),
    "sparse": _customer(""),
}


def _steps() -> list[tuple[Campaign, Step, Edition | None]]:
    campaigns, problems = load_campaigns(SCAFFOLD / "campaigns", TEMPLATES)
    assert problems == []
    cases: list[tuple[Campaign, Step, Edition | None]] = []
    for campaign in campaigns:
        for step in campaign.steps:
            if step.personal:
                continue  # a task: no template (tests/unit/test_personal_steps.py)
            cases += [(campaign, step, edition) for edition in campaign.editions or (None,)]
    return cases


def _context(
    customer: Customer, campaign: Campaign, step: Step, edition: Edition | None
) -> dict[str, Any]:
    from dripper.campaigns.samplecheck import sample_event

    event = sample_event(campaign, datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
    return {
        "event": None if event is None else event.as_context(),
        "customer": customer.as_context(),
        "company": {"name": "Acme Coffee", "url": "https://acme.test", "postal_address": ADDRESS},
        "campaign": {"name": campaign.name},
        "step": {"id": step.id},
        "edition": None
        if edition is None
        else {"title": edition.title, "html": edition.html, "text": edition.text},
        "unsubscribe_url": UNSUBSCRIBE,
        "now": datetime(2027, 3, 1, 9, 0, tzinfo=UTC),
        "answer_url": lambda question, answer: f"https://acme.test/a/{question}.{answer}",
        "referral_url": "https://acme.test/r/Zm9vYmFy",
        "referral_code": "3f9a0c1e77b2d4a5",
    }


@pytest.mark.parametrize("who", sorted(CUSTOMERS))
@pytest.mark.parametrize(
    ("campaign", "step", "edition"),
    _steps(),
    ids=lambda v: getattr(v, "name", None) or getattr(v, "slug", None) or getattr(v, "id", "-"),
)
def test_every_step_renders_to_html(
    campaign: Campaign, step: Step, edition: Edition | None, who: str
) -> None:
    """Each step's template and subjects render strictly, and MJML compiles them to HTML with
    the unsubscribe link and the postal address in it."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False
    )
    from dripper.render.filters import breakable

    env.filters["breakable"] = breakable  # dripper's own filter the referral email uses
    ctx = _context(CUSTOMERS[who], campaign, step, edition)
    ctx["subject"] = env.from_string(step.subjects[0]).render(ctx).strip()  # the <title>
    mjml = env.get_template(step.template).render(ctx)
    html = mjml2html(mjml)
    assert "<mj-" not in html  # MJML passes unknown tags through instead of failing
    assert "{{" not in html
    assert "{%" not in html
    assert f'href="{UNSUBSCRIBE}"' in html
    assert ADDRESS in html
    if edition is not None:
        assert edition.title in html
    for subject in step.subjects:
        rendered = env.from_string(subject).render(ctx).strip()
        assert rendered
        assert "\n" not in rendered
