"""The planning core: enrollments, goals, exits, send-time guards, and properties over
random histories (hypothesis)."""

from __future__ import annotations

import tempfile
import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.campaigns import Campaign, load_campaigns
from dripper.config import FrequencyCap
from dripper.customers.model import Customer, Status
from dripper.engine.model import (
    ActiveEnrollment,
    EnrollmentStatus,
    EventFacts,
    SendDecision,
    Verdict,
)
from dripper.engine.plan import (
    context,
    date_enrollment,
    on_event,
    schedule_enrollment,
    send_decision,
    variant_for,
)
from dripper.engine.timing import in_quiet_hours, zone

CAMPAIGNS = {
    "welcome.yaml": """
trigger: {event: purchase, if: customer.purchases == 1}
goal: {event: purchase, within: 30d}
exit_on: [reply]
steps:
  - {id: thank-you, after: 0, subject: "Thanks {{ customer.first_name }}", template: t.mjml}
  - id: second-sale
    after: 14d
    send_at: "10:00"
    if: customer.purchases < 2
    subject: ["A {{ customer.first_name }}", "B"]
    template: t.mjml
""",
    "referral.yaml": """
trigger: {event: purchase, if: customer.purchases == 2}
exit_on: [reply]
steps:
  - {id: ask, after: 3d, send_at: "10:00", subject: "Tell a friend", template: t.mjml}
""",
    "birthday.yaml": """
trigger: {date: customer.birthday, annually: true}
steps:
  - {id: greeting, after: 0, send_at: "09:00", subject: "Happy birthday", template: t.mjml}
""",
    "receipt.yaml": """
transactional: true
trigger: {event: purchase}
steps:
  - {id: receipt, after: 0, subject: "Your receipt", template: t.mjml}
""",
    "big-spender.yaml": """
trigger: {when: "customer.total_spent >= 500"}
audience: "'vip' in customer.tags"
steps:
  - {id: hello, after: 0, subject: "Hello", template: t.mjml}
""",
}


def _load() -> dict[str, Campaign]:
    root = Path(tempfile.mkdtemp(prefix="dripper-plan-"))
    (root / "campaigns").mkdir()
    (root / "templates").mkdir()
    (root / "templates" / "t.mjml").write_text("<mjml><mj-body></mj-body></mjml>")
    for name, text in CAMPAIGNS.items():
        (root / "campaigns" / name).write_text(text)
    campaigns, problems = load_campaigns(root / "campaigns", root / "templates")
    assert problems == [], problems
    return {c.name: c for c in campaigns}


C = _load()
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)  # 10:00 in New York


def customer(**changes: object) -> Customer:
    base = Customer(
        id=1,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        timezone="America/New_York",
        locale="en",
        tags=(),
        attributes={"birthday": "1990-03-10"},
        status=Status.SUBSCRIBED,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        purchases=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_first_purchase_enrolls_welcome_with_thank_you_now_and_offer_on_day_14() -> None:
    """A first purchase plans the thank-you at once and the offer on day 14 at 10:00 local."""
    decisions = on_event(
        [C["welcome"], C["referral"]],
        customer(),
        EventFacts(7, "purchase", T0),
        [],
        fallback_tz="UTC",
        now=T0,
    )
    (enrollment,) = decisions.enroll
    assert enrollment.campaign == "welcome"
    assert enrollment.occurrence == "event:7"
    thank_you, offer = enrollment.sends
    assert thank_you.due_at == T0
    assert offer.due_at == datetime(2027, 1, 18, 15, 0, tzinfo=UTC)
    assert offer.variant == variant_for("ada@example.com", "welcome", "second-sale", 2)


def test_second_purchase_converts_and_enrolls_referral() -> None:
    """A second purchase within 30 days converts welcome (attributed to the last step sent)
    and enrolls the referral request."""
    active = [ActiveEnrollment(3, "welcome", "event:7", T0, 7, last_sent_step="thank-you")]
    later = T0 + timedelta(days=5)
    decisions = on_event(
        [C["welcome"], C["referral"]],
        customer(purchases=2),
        EventFacts(8, "purchase", later),
        active,
        fallback_tz="UTC",
        now=later,
    )
    (ending,) = decisions.end
    assert ending.status is EnrollmentStatus.CONVERTED
    assert ending.attributed_step == "thank-you"
    assert [e.campaign for e in decisions.enroll] == ["referral"]
    assert decisions.enroll[0].sends[0].due_at == datetime(2027, 1, 12, 15, 0, tzinfo=UTC)


def test_backfilled_event_plans_stale_steps_as_skipped() -> None:
    """A purchase recorded weeks after it happened does not send a belated thank-you."""
    now = T0 + timedelta(days=20)
    decisions = on_event(
        [C["welcome"]], customer(), EventFacts(7, "purchase", T0), [], fallback_tz="UTC", now=now
    )
    thank_you, offer = decisions.enroll[0].sends
    assert thank_you.skip_reason is not None
    assert "late" in thank_you.skip_reason
    assert offer.skip_reason is not None
    fresh = on_event(
        [C["welcome"]],
        customer(),
        EventFacts(7, "purchase", T0),
        [],
        fallback_tz="UTC",
        now=T0 + timedelta(hours=2),
    )
    assert all(s.skip_reason is None for s in fresh.enroll[0].sends)


def test_goal_outside_its_window_does_not_convert() -> None:
    """A purchase after the 30-day window is not a conversion."""
    active = [ActiveEnrollment(3, "welcome", "event:7", T0, 7)]
    late = T0 + timedelta(days=31)
    decisions = on_event(
        [C["welcome"]],
        customer(purchases=2),
        EventFacts(9, "purchase", late),
        active,
        fallback_tz="UTC",
        now=late,
    )
    assert decisions.end == ()


def test_reply_exits_where_exit_on_says() -> None:
    """A reply ends enrollments of campaigns with exit_on: [reply], and only those."""
    active = [
        ActiveEnrollment(3, "welcome", "event:7", T0, 7),
        ActiveEnrollment(4, "receipt", "event:7", T0, 7),
    ]
    decisions = on_event(
        list(C.values()),
        customer(),
        EventFacts(10, "reply", T0 + timedelta(days=1)),
        active,
        fallback_tz="UTC",
        now=T0 + timedelta(days=1),
    )
    assert [(e.enrollment_id, e.status) for e in decisions.end] == [(3, EnrollmentStatus.EXITED)]


def test_unsubscribed_customers_are_not_enrolled() -> None:
    """No campaign, transactional or not, enrolls an unsubscribed customer."""
    decisions = on_event(
        list(C.values()),
        customer(status=Status.UNSUBSCRIBED),
        EventFacts(7, "purchase", T0),
        [],
        fallback_tz="UTC",
        now=T0,
    )
    assert decisions.enroll == ()


def test_birthday_enrolls_at_local_midnight_once_a_year() -> None:
    """The birthday enrollment is the start of the day in the customer's zone; the greeting
    is at 09:00 local; nothing before the day; no belated greeting for a date that passed
    before the customer was added."""
    tz = zone("America/New_York", "UTC")
    day_before = datetime(2027, 3, 9, 12, tzinfo=UTC)
    assert date_enrollment(C["birthday"], customer(), now=day_before, fallback_tz="UTC") is None
    on_the_day = datetime(2027, 3, 10, 6, tzinfo=UTC)  # 01:00 in New York
    enrollment = date_enrollment(C["birthday"], customer(), now=on_the_day, fallback_tz="UTC")
    assert enrollment is not None
    assert enrollment.occurrence == "2027"
    assert enrollment.enrolled_at.astimezone(tz).time() == time(0, 0)
    assert enrollment.sends[0].due_at.astimezone(tz).replace(tzinfo=None) == datetime(
        2027, 3, 10, 9, 0
    )
    imported_later = customer(created_at=datetime(2027, 3, 11, 12, tzinfo=UTC))
    now = datetime(2027, 3, 12, tzinfo=UTC)
    assert date_enrollment(C["birthday"], imported_later, now=now, fallback_tz="UTC") is None


def test_leap_day_birthday_in_a_common_year() -> None:
    """A Feb 29 birthday enrolls on Feb 28 in 2027."""
    leap = customer(attributes={"birthday": "1992-02-29"})
    now = datetime(2027, 2, 28, 12, tzinfo=UTC)
    enrollment = date_enrollment(C["birthday"], leap, now=now, fallback_tz="UTC")
    assert enrollment is not None
    assert enrollment.enrolled_at.date().isoformat() in ("2027-02-28", "2027-02-27")


def test_when_trigger_and_audience() -> None:
    """`when` enrolls once the condition holds; audience is checked at send time."""
    rich = customer(total_spent=600)
    decisions = on_event(
        [C["big-spender"]], rich, EventFacts(1, "purchase", T0), [], fallback_tz="UTC", now=T0
    )
    assert [e.occurrence for e in decisions.enroll] == ["once"]
    campaign = C["big-spender"]
    decision = send_decision(
        campaign=campaign,
        step=campaign.steps[0],
        customer=rich,
        suppressed=False,
        enrollment_status=EnrollmentStatus.ACTIVE,
        ctx=context(rich, campaign, T0),
        now=T0,
        fallback_tz="UTC",
        quiet_hours=None,
        cap=None,
        recent_sends=[],
    )
    assert decision.verdict is Verdict.SKIP
    assert "audience" in decision.reason


def test_send_guards_in_order() -> None:
    """Suppression cancels; a false step `if` skips; quiet hours and the cap defer; a
    transactional campaign ignores both."""
    welcome = C["welcome"]
    offer = welcome.steps[1]
    ada = customer()

    def decide(**kw: object):  # type: ignore[no-untyped-def]
        args: dict[str, object] = dict(
            campaign=welcome,
            step=offer,
            customer=ada,
            suppressed=False,
            enrollment_status=EnrollmentStatus.ACTIVE,
            ctx=context(ada, welcome, T0),
            now=T0,
            fallback_tz="UTC",
            quiet_hours=None,
            cap=None,
            recent_sends=[],
        )
        args.update(kw)
        return send_decision(**args)  # type: ignore[arg-type]

    assert decide().verdict is Verdict.SEND
    assert decide(suppressed=True).verdict is Verdict.CANCEL
    assert decide(enrollment_status=EnrollmentStatus.CONVERTED).verdict is Verdict.CANCEL
    two = customer(purchases=2)
    assert decide(customer=two, ctx=context(two, welcome, T0)).verdict is Verdict.SKIP
    night = datetime(2027, 1, 5, 3, tzinfo=UTC)  # 22:00 in New York
    deferred = decide(now=night, quiet_hours=(time(21), time(8)))
    assert deferred.verdict is Verdict.DEFER
    assert deferred.until == datetime(2027, 1, 5, 13, tzinfo=UTC)
    capped = decide(cap=FrequencyCap(1, timedelta(days=2)), recent_sends=[T0 - timedelta(hours=1)])
    assert capped.verdict is Verdict.DEFER
    assert capped.until == T0 + timedelta(days=2) - timedelta(hours=1)
    receipt = C["receipt"]
    assert (
        decide(
            campaign=receipt,
            step=receipt.steps[0],
            now=night,
            quiet_hours=(time(21), time(8)),
            cap=FrequencyCap(1, timedelta(days=2)),
            recent_sends=[night],
        ).verdict
        is Verdict.SEND
    )


def test_a_customer_not_subscribed_to_marketing_gets_only_transactional_email() -> None:
    """`not_subscribed` (a buyer who did not opt in at checkout): a transactional campaign
    still sends; a marketing step is skipped with that reason; `unsubscribed` cancels
    even the transactional one."""
    welcome, receipt = C["welcome"], C["receipt"]
    quiet = customer(status=Status.NOT_SUBSCRIBED)
    gone = customer(status=Status.UNSUBSCRIBED)

    def decide(campaign: Campaign, who: Customer) -> SendDecision:
        return send_decision(
            campaign=campaign,
            step=campaign.steps[-1],
            customer=who,
            suppressed=False,
            enrollment_status=EnrollmentStatus.ACTIVE,
            ctx=context(who, campaign, T0),
            now=T0,
            fallback_tz="UTC",
            quiet_hours=None,
            cap=None,
            recent_sends=[],
        )

    assert decide(receipt, quiet).verdict is Verdict.SEND
    skipped = decide(welcome, quiet)
    assert (skipped.verdict, skipped.reason) == (Verdict.SKIP, "not subscribed to marketing")
    assert decide(receipt, gone).verdict is Verdict.CANCEL


def test_events_enroll_a_customer_not_subscribed_only_where_something_is_transactional() -> (
    None
):
    """A first purchase by a buyer who did not opt in enrolls them in campaigns with a
    transactional email (the receipt) and in nothing that is marketing only."""
    quiet = customer(status=Status.NOT_SUBSCRIBED, purchases=1)
    purchase = EventFacts(9, "purchase", T0, {})
    decisions = on_event(list(C.values()), quiet, purchase, [], fallback_tz="UTC", now=T0)
    names = {e.campaign for e in decisions.enroll}
    assert "receipt" in names
    assert "welcome" not in names


def test_schedule_run_starts_at_local_midnight() -> None:
    """A newsletter run enrolls from the start of the run day in each customer's zone."""
    tokyo = customer(timezone="Asia/Tokyo")
    enrollment = schedule_enrollment(C["welcome"], tokyo, T0.date(), fallback_tz="UTC", now=T0)
    assert enrollment is not None
    assert enrollment.occurrence == "2027-01-04"
    assert enrollment.enrolled_at == datetime(2027, 1, 3, 15, tzinfo=UTC)


# --- properties over random histories --------------------------------------------------

ZONES = sorted(z for z in zoneinfo.available_timezones() if "/" in z and "Etc" not in z)
EVENT_KINDS = st.sampled_from(["purchase", "purchase", "reply", "unsubscribe", "visit"])
histories = st.lists(
    st.tuples(EVENT_KINDS, st.integers(min_value=0, max_value=60 * 24 * 40)), max_size=12
)


@settings(max_examples=150, deadline=None)
@given(
    history=histories,
    tz_name=st.sampled_from(ZONES),
    quiet=st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from([time(21), time(22), time(0)]),
            st.sampled_from([time(7), time(8), time(9)]),
        ),
    ),
)
def test_histories(
    history: list[tuple[str, int]], tz_name: str, quiet: tuple[time, time] | None
) -> None:
    """Over any history: no step planned twice, none sent after a goal, exit or unsubscribe,
    no send before its enrollment, none inside quiet hours unless transactional."""
    campaigns = [C["welcome"], C["referral"], C["receipt"]]
    by_name = {c.name: c for c in campaigns}
    cust = customer(timezone=tz_name, purchases=0)
    enrollments: dict[tuple[str, str], dict[str, object]] = {}
    outbox: dict[tuple[str, str, str], dict[str, object]] = {}
    ended_at: dict[tuple[str, str], datetime] = {}
    unsubscribed_at: datetime | None = None
    tz = zone(tz_name, "UTC")
    events = sorted(history, key=lambda item: item[1])
    next_id = 0
    sent: list[tuple[tuple[str, str, str], datetime]] = []

    def deliver_until(limit: datetime) -> None:
        # Send everything due before `limit`, in due order, through the real guards.
        while True:
            due = sorted(
                (row["due"], key)
                for key, row in outbox.items()
                if row["status"] == "planned" and row["due"] <= limit  # type: ignore[operator]
            )
            if not due:
                return
            when, key = due[0]
            assert isinstance(when, datetime)
            row = outbox[key]
            campaign = by_name[key[0]]
            step = campaign.step(key[2])
            assert step is not None
            status = enrollments[(key[0], key[1])]["status"]
            assert isinstance(status, EnrollmentStatus)
            decision = send_decision(
                campaign=campaign,
                step=step,
                customer=cust,
                suppressed=unsubscribed_at is not None,
                enrollment_status=status,
                ctx=context(cust, campaign, when),
                now=when,
                fallback_tz="UTC",
                quiet_hours=quiet,
                cap=None,
                recent_sends=[],
            )
            if decision.verdict is Verdict.SEND:
                row["status"] = "sent"
                sent.append((key, when))
            elif decision.verdict is Verdict.DEFER:
                assert decision.until is not None
                assert decision.until > when
                row["due"] = decision.until
            else:
                row["status"] = decision.verdict.value

    for kind, minute in events:
        at = T0 + timedelta(minutes=minute)
        deliver_until(at)
        if kind == "unsubscribe":
            unsubscribed_at = at
            cust = replace(cust, status=Status.UNSUBSCRIBED)
            continue
        next_id += 1
        if kind == "purchase":
            cust = replace(cust, purchases=cust.purchases + 1)
        active = [
            ActiveEnrollment(i, c, o, e["at"], e["event"])  # type: ignore[arg-type]
            for i, ((c, o), e) in enumerate(enrollments.items())
            if e["status"] is EnrollmentStatus.ACTIVE
        ]
        ids = list(enrollments)
        decisions = on_event(
            campaigns, cust, EventFacts(next_id, kind, at), active, fallback_tz="UTC", now=at
        )
        for ending in decisions.end:
            key2 = ids[ending.enrollment_id]
            enrollments[key2]["status"] = ending.status
            ended_at[key2] = at
        for new in decisions.enroll:
            key2 = (new.campaign, new.occurrence)
            assert key2 not in enrollments, "enrolled twice for one occurrence"
            enrollments[key2] = {
                "status": EnrollmentStatus.ACTIVE,
                "at": new.enrolled_at,
                "event": new.event_id,
            }
            for send in new.sends:
                key3 = (new.campaign, new.occurrence, send.step)
                assert key3 not in outbox, "step planned twice"
                assert send.due_at >= new.enrolled_at
                outbox[key3] = {"status": "planned", "due": send.due_at}
    deliver_until(T0 + timedelta(days=80))

    assert len({key for key, _ in sent}) == len(sent), "a step was sent twice"
    for key, when in sent:
        enrollment = enrollments[(key[0], key[1])]
        assert when >= enrollment["at"]  # type: ignore[operator]
        if unsubscribed_at is not None:
            assert when <= unsubscribed_at
        end = ended_at.get((key[0], key[1]))
        if end is not None:
            assert when <= end, "sent after a goal or exit"
        if quiet is not None and not by_name[key[0]].transactional:
            assert not in_quiet_hours(when, quiet, tz)


def test_a_goal_reached_after_the_last_step_still_converts() -> None:
    """Every step sent (the enrollment completed), a purchase within the window converts it,
    attributed to the last step; a reply does not end a completed enrollment again."""
    done = [
        ActiveEnrollment(
            3, "welcome", "event:7", T0, 7, "second-sale", status=EnrollmentStatus.COMPLETED
        )
    ]
    later = T0 + timedelta(days=20)
    bought = on_event(
        [C["welcome"]], customer(purchases=2), EventFacts(9, "purchase", later), done,
        fallback_tz="UTC", now=later,
    )  # fmt: skip
    (ending,) = bought.end
    assert (ending.status, ending.attributed_step) == (EnrollmentStatus.CONVERTED, "second-sale")
    replied = on_event(
        [C["welcome"]], customer(), EventFacts(10, "reply", later), done,
        fallback_tz="UTC", now=later,
    )  # fmt: skip
    assert replied.end == ()
