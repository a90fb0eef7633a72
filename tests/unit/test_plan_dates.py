"""Date triggers: anniversaries fire from the first one after the date, never on the date
itself or early; values that are not dates are named, not silently skipped."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from dripper.campaigns import Campaign, load_campaigns
from dripper.config import FrequencyCap
from dripper.customers.model import Customer, Status
from dripper.engine.dates import (
    BadDate,
    as_date,
    customer_names,
    date_problem,
    summarize,
    unknown_name_problem,
)
from dripper.engine.model import EnrollmentStatus, Verdict
from dripper.engine.plan import context, date_enrollment, send_decision

CAMPAIGNS = {
    "birthday.yaml": "trigger: {date: customer.birthday, annually: true}\n",
    "anniversary.yaml": "trigger: {date: customer.first_purchase_at, annually: true}\n",
    "once.yaml": "trigger: {date: customer.renewal}\n",
    "welcome.yaml": "trigger: {event: purchase}\n",
}
STEPS = """steps:
  - {id: thanks, transactional: true, subject: Thanks, template: t.mjml}
  - {id: offer, after: 14d, subject: Offer, template: t.mjml}
"""


def _load() -> dict[str, Campaign]:
    root = Path(tempfile.mkdtemp(prefix="dripper-dates-"))
    (root / "campaigns").mkdir()
    (root / "templates").mkdir()
    (root / "templates" / "t.mjml").write_text("<mjml><mj-body></mj-body></mjml>")
    for name, trigger in CAMPAIGNS.items():
        (root / "campaigns" / name).write_text(trigger + STEPS)
    campaigns, problems = load_campaigns(root / "campaigns", root / "templates")
    assert problems == [], problems
    return {c.name: c for c in campaigns}


C = _load()


def customer(**changes: object) -> Customer:
    base = Customer(
        id=1,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        timezone="UTC",
        locale="en",
        tags=(),
        attributes={"birthday": "1990-03-10"},
        status=Status.SUBSCRIBED,
        created_at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def enroll(campaign: str, who: Customer, now: datetime) -> str | None:
    """The occurrence enrolled at `now`, or None."""
    found = date_enrollment(C[campaign], who, now=now, fallback_tz="UTC")
    return None if found is None else found.occurrence


def test_a_first_purchase_is_not_its_own_anniversary() -> None:
    """Two days after a first purchase nothing fires; the first anniversary does, a year on."""
    buyer = customer(first_purchase_at=datetime(2027, 1, 4, 15, tzinfo=UTC))
    assert enroll("anniversary", buyer, datetime(2027, 1, 6, 12, tzinfo=UTC)) is None
    assert enroll("anniversary", buyer, datetime(2027, 1, 4, 18, tzinfo=UTC)) is None
    assert enroll("anniversary", buyer, datetime(2028, 1, 4, 9, tzinfo=UTC)) == "2028"


def test_a_birthday_of_today_or_in_the_future_never_fires() -> None:
    """A baby born today is not one year old; a date in the future waits for itself + 1 year."""
    today = datetime(2027, 3, 10, 12, tzinfo=UTC)
    born_today = customer(attributes={"birthday": "2027-03-10"})
    assert enroll("birthday", born_today, today) is None
    future = customer(attributes={"birthday": "2030-03-10"})
    assert enroll("birthday", future, today) is None
    assert enroll("birthday", future, datetime(2031, 3, 10, 12, tzinfo=UTC)) == "2031"
    assert enroll("birthday", customer(), today) == "2027"  # a real birthday still fires


def test_a_one_off_date_fires_on_the_day_itself() -> None:
    """Without `annually` the date is the day: a renewal date fires on it, not a year later."""
    renewal = customer(attributes={"renewal": "2027-03-10"})
    assert enroll("once", renewal, datetime(2027, 3, 10, 12, tzinfo=UTC)) == "2027-03-10"


def test_a_leap_day_birthday_falls_on_feb_28_in_common_years() -> None:
    """The scaffold's 1992-02-29 birthday fires on 2027-02-28."""
    leap = customer(attributes={"birthday": "1992-02-29"})
    assert enroll("birthday", leap, datetime(2027, 2, 28, 12, tzinfo=UTC)) == "2027"
    assert enroll("birthday", leap, datetime(2028, 2, 29, 12, tzinfo=UTC)) == "2028"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1990-02-29", "day is out of range for month"),
        ("1990-02-30", "day is out of range for month"),
        ("31/12/1990", "use YYYY-MM-DD"),
        ("19900228", "use YYYY-MM-DD"),
        ("soon", "use YYYY-MM-DD"),
        (12, "use YYYY-MM-DD"),
    ],
)
def test_values_that_are_not_dates_say_why(value: object, problem: str) -> None:
    """Each bad value gets a reason; the planner reads it as no date."""
    reason = date_problem(value)
    assert reason is not None
    assert problem in reason
    assert as_date(value) is None


@pytest.mark.parametrize(
    ("value", "day"),
    [
        ("1992-02-29", date(1992, 2, 29)),
        (" 1990-03-10 ", date(1990, 3, 10)),
        ("2027-01-04T10:00:00+00:00", date(2027, 1, 4)),
        (datetime(2027, 1, 4, 15, tzinfo=UTC), date(2027, 1, 4)),
        (date(2027, 1, 4), date(2027, 1, 4)),
    ],
)
def test_dates_read_as_dates(value: object, day: date) -> None:
    """ISO dates, ISO times and date values are all days, with no problem."""
    assert date_problem(value) is None
    assert as_date(value) == day


def test_empty_values_are_no_date_and_no_problem() -> None:
    """A customer without a birthday is not a data error."""
    assert date_problem(None) is None
    assert date_problem("  ") is None
    assert as_date("") is None


def test_a_misspelt_column_is_named_with_a_suggestion() -> None:
    """`customer.brithday` when samples have `birthday`: did you mean."""
    assert customer_names('customer.brithday or customer["bday"]') == ["brithday", "bday"]
    problem = unknown_name_problem("customer.brithday", ["birthday", "email"])
    assert problem is not None
    assert "did you mean 'customer.birthday'?" in problem
    assert unknown_name_problem("customer.birthday", ["birthday"]) is None


def test_bad_dates_are_summarised_first_few_then_a_count() -> None:
    """Five customers by address and line, then how many more."""
    bad = [BadDate(f"c{i}@example.com", i + 2, "'x' is not a date") for i in range(8)]
    line = summarize("birthday", bad, users="campaign birthday")
    assert line.startswith("8 customer(s) have a 'birthday' that is not a date")
    assert "c0@example.com (line 2)" in line
    assert "c4@example.com (line 6)" in line
    assert "c5@example.com" not in line
    assert line.endswith("and 3 more")


def test_a_transactional_step_ignores_cap_and_quiet_hours_of_its_campaign() -> None:
    """The thank-you goes at once through a full cap at night; the offer of the same
    campaign waits."""
    welcome = C["welcome"]
    ada = customer()
    night = datetime(2027, 1, 5, 23, tzinfo=UTC)

    def verdict(step: int) -> Verdict:
        return send_decision(
            campaign=welcome,
            step=welcome.steps[step],
            customer=ada,
            suppressed=False,
            enrollment_status=EnrollmentStatus.ACTIVE,
            ctx=context(ada, welcome, night),
            now=night,
            fallback_tz="UTC",
            quiet_hours=(time(21), time(8)),
            cap=FrequencyCap(1, timedelta(days=2)),
            recent_sends=[night - timedelta(hours=1)],
        ).verdict

    assert verdict(0) is Verdict.SEND
    assert verdict(1) is Verdict.DEFER
    unsubscribed = replace(ada, status=Status.UNSUBSCRIBED)
    assert (
        send_decision(
            campaign=welcome,
            step=welcome.steps[0],
            customer=unsubscribed,
            suppressed=False,
            enrollment_status=EnrollmentStatus.ACTIVE,
            ctx=context(unsubscribed, welcome, night),
            now=night,
            fallback_tz="UTC",
            quiet_hours=None,
            cap=None,
            recent_sends=[],
        ).verdict
        is Verdict.CANCEL
    )
