"""Holdouts in the pure core (DESIGN 17): `holdout:` read and refused where it has no
meaning, the held share stable per customer and campaign and close to what was asked, a
held enrollment planned like any other; an ordering with a value not known yet (a
prediction before the first fit) is quietly false."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dripper.campaigns import load_campaigns
from dripper.customers.model import Customer, Status
from dripper.engine.plan import held_out, plan_enrollment, when_matches

T0 = datetime(2027, 1, 4, 15, tzinfo=UTC)
BASE = (
    "description: x\ntrigger: {when: customer.purchases >= 1}\nEXTRA"
    "steps:\n  - id: s\n    subject: Hi\n    template: t.mjml\n"
)


def load(tmp_path: Path, extra: str) -> tuple[list, list[str]]:  # type: ignore[type-arg]
    (tmp_path / "campaigns").mkdir(exist_ok=True)
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "t.mjml").write_text("<mjml><mj-body></mj-body></mjml>")
    (tmp_path / "campaigns" / "c.yaml").write_text(BASE.replace("EXTRA", extra))
    campaigns, problems = load_campaigns(
        tmp_path / "campaigns", tmp_path / "templates", display_base=tmp_path
    )
    return list(campaigns), [str(p) for p in problems]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("holdout: 10\n", "c.yaml:3: holdout: write the share with %, like 10%"),
        ("holdout: 0%\n", "expected a share from 0.01% to 50%, like 10%, got '0%'"),
        ("holdout: 80%\n", "expected a share from 0.01% to 50%"),
        ("holdout: ten%\n", "expected a share from 0.01% to 50%"),
        (
            "holdout: 10%\ntransactional: true\n",
            "c.yaml:3: holdout: a transactional campaign has no holdout",
        ),
    ],
)
def test_a_holdout_that_means_nothing_is_refused(tmp_path: Path, extra: str, said: str) -> None:
    """A number without %, a share outside (0, 50], or a transactional campaign: one line."""
    campaigns, problems = load(tmp_path, extra)
    assert campaigns == []
    assert any(said in p for p in problems), problems


def customer(email: str, **changes: object) -> Customer:
    from dataclasses import replace

    base = Customer(
        id=1,
        email=email,
        first_name="",
        last_name="",
        timezone=None,
        locale=None,
        tags=(),
        attributes={},
        status=Status.SUBSCRIBED,
        created_at=T0,
        purchases=2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_held_share_is_stable_and_close_to_what_was_asked(tmp_path: Path) -> None:
    """12.5% of 20,000 addresses held out, within 0.7 points; the same customer is held
    the same way every time; a campaign without a holdout holds nobody; a held
    enrollment is planned with its steps like any other."""
    campaigns, _ = load(tmp_path, "holdout: 12.5%\n")
    campaign = campaigns[0]
    assert campaign.holdout == 12.5
    emails = [f"person{i}@example.com" for i in range(20_000)]
    share = sum(held_out(e, campaign) for e in emails) / len(emails)
    assert share == pytest.approx(0.125, abs=0.007)
    assert [held_out(e, campaign) for e in emails[:200]] == [
        held_out(e, campaign) for e in emails[:200]
    ]
    plain, _ = load(tmp_path, "")
    assert not any(held_out(e, plain[0]) for e in emails[:2000])
    someone = next(e for e in emails if held_out(e, campaign))
    planned = plan_enrollment(
        campaign,
        customer(someone),
        occurrence="once",
        enrolled_at=T0,
        event_id=None,
        tz=UTC,
        now=T0,
    )
    assert planned.held
    assert [s.step for s in planned.sends] == ["s"]


def test_an_unknown_prediction_matches_nobody_quietly(tmp_path: Path) -> None:
    """`customer.p_alive < 0.5` before any fit: false, and no warning; with a value, as
    written."""
    campaigns, _ = load(tmp_path, "")
    (tmp_path / "campaigns" / "c.yaml").write_text(
        BASE.replace("EXTRA", "").replace(
            "customer.purchases >= 1", '"customer.p_alive < 0.5 and customer.purchases >= 2"'
        )
    )
    campaigns, problems = load_campaigns(tmp_path / "campaigns", tmp_path / "templates")
    assert problems == []
    warnings: list[str] = []
    unknown = customer("a@example.com")
    assert not when_matches(campaigns[0], unknown, now=T0, warnings=warnings)
    assert warnings == []
    drifting = customer("a@example.com", p_alive=0.3)
    assert when_matches(campaigns[0], drifting, now=T0, warnings=warnings)
    assert not when_matches(campaigns[0], customer("b@example.com", p_alive=0.9), now=T0)
