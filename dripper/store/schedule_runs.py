"""A recurring campaign's run for every subscribed customer, planned by the database: two
`INSERT ... SELECT` statements (the enrollments, then their sends) joined to a small table
of what each time zone's customers get (engine.plan.schedule_zone_plans), instead of a
row built in Python per customer. Same rows as the Python planner, on both databases
(tests/integration/test_schedule_runs.py); re-planning a run is a no-op (the unique keys,
ON CONFLICT DO NOTHING).

The A/B variant is the one thing per customer: `variant_for`'s SHA-256 of campaign, step
and address, computed by PostgreSQL itself, or on SQLite by `variant_for` registered as
an SQL function.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.engine.model import SendStatus
from dripper.engine.plan import HOLDOUT_BUCKETS, HOLDOUT_KEY, ZonePlan, variant_for
from dripper.store.engine import dialect_of
from dripper.store.types import UTCDateTime

ALL_IDS = 2**62  # above any id: the upper end of "every customer"
_scratch = sa.MetaData()
_ZONES = sa.Table(
    "_run_zones",
    _scratch,
    sa.Column("tz", sa.String(64), primary_key=True),
    sa.Column("enrolled_at", UTCDateTime, nullable=False),
    prefixes=["TEMPORARY"],
)
_STEPS = sa.Table(
    "_run_steps",
    _scratch,
    sa.Column("tz", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(100), primary_key=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("variants", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    prefixes=["TEMPORARY"],
)

_ENROLL = """
INSERT INTO enrollments (customer_id, campaign, occurrence, enrolled_at, event_id, status, held)
SELECT c.id, :campaign, :occurrence, z.enrolled_at, NULL, 'active', {held}
FROM customers c JOIN _run_zones z ON z.tz = COALESCE(c.timezone, '')
WHERE c.status = 'subscribed' AND c.id >= :low AND c.id < :high
ON CONFLICT (customer_id, campaign, occurrence) DO NOTHING
"""

_SENDS = """
INSERT INTO outbox (enrollment_id, customer_id, campaign, occurrence, step, due_at,
                    next_attempt_at, status, reason, variant, kind, created_at, updated_at)
SELECT e.id, e.customer_id, e.campaign, e.occurrence, s.step, s.due_at, s.due_at, s.status,
       s.reason, {variant}, s.kind, :now, :now
FROM enrollments e
JOIN customers c ON c.id = e.customer_id
JOIN _run_steps s ON s.tz = COALESCE(c.timezone, '')
WHERE e.campaign = :campaign AND e.occurrence = :occurrence AND e.customer_id >= :low
  AND e.customer_id < :high
ON CONFLICT (customer_id, campaign, occurrence, step) DO NOTHING
"""

# variant_for in SQL: the first 8 bytes of SHA-256(campaign NUL step NUL email), read as
# an unsigned 64-bit integer, modulo the number of subjects; hashed only for a step that
# has several (a scalar subquery in the ELSE branch runs only when it is taken).
_PG_VARIANT = """CASE WHEN s.variants <= 1 THEN 0 ELSE (SELECT CAST(
  (CASE WHEN h.v < 0 THEN h.v::numeric + 18446744073709551616 ELSE h.v::numeric END)
  % s.variants AS INTEGER) FROM (SELECT ('x' || encode(substring(sha256(
  convert_to(e.campaign, 'UTF8') || '\\x00'::bytea || convert_to(s.step, 'UTF8')
  || '\\x00'::bytea || convert_to(c.email, 'UTF8')) from 1 for 8), 'hex'))::bit(64)::bigint
  AS v) h) END"""
_SQLITE_VARIANT = "dripper_variant(e.campaign, s.step, c.email, s.variants)"
# plan.held_out in SQL: the variant hash of the campaign's holdout key in 10,000 buckets,
# below the threshold (0: nobody held out).
_PG_HELD = "(:threshold > 0 AND {} < :threshold)".format(
    _PG_VARIANT.replace("s.variants", str(HOLDOUT_BUCKETS))
    .replace("convert_to(s.step, 'UTF8')", f"convert_to('{HOLDOUT_KEY}', 'UTF8')")
    .replace("convert_to(e.campaign, 'UTF8')", "convert_to(CAST(:held_campaign AS text), 'UTF8')")
)
_SQLITE_HELD = (
    f"(:threshold > 0 AND dripper_variant(:held_campaign, '{HOLDOUT_KEY}', c.email, "
    f"{HOLDOUT_BUCKETS}) < :threshold)"
)


def enroll_run(
    conn: Connection,
    campaign: str,
    occurrence: str,
    plans: Sequence[ZonePlan],
    *,
    now: datetime,
    ids: tuple[int, int] = (0, ALL_IDS),
    holdout: int = 0,
) -> int:
    """Enroll every subscribed customer in `campaign`'s run `occurrence` with its sends;
    returns how many enrollments were new. A customer whose time-zone value has no plan
    is left out (`zones` finds them). `ids`: only the customers with an id in [low, high)
    (two connections write a run side by side on PostgreSQL, each a range of its own, so
    that they seldom touch the same index pages)."""
    dialect = dialect_of(conn)
    _scratch.create_all(conn, checkfirst=True)
    conn.execute(_STEPS.delete())
    conn.execute(_ZONES.delete())
    conn.execute(_ZONES.insert(), [{"tz": p.timezone, "enrolled_at": p.enrolled_at} for p in plans])
    conn.execute(
        _STEPS.insert(),
        [
            {
                "tz": p.timezone,
                "step": send.step,
                "due_at": send.due_at,
                "status": (SendStatus.SKIPPED if send.skip_reason else SendStatus.PLANNED).value,
                "reason": send.skip_reason,
                "variants": send.variant,
                "kind": send.kind,
            }
            for p in plans
            for send in p.sends
        ],
    )
    low, high = ids
    names = {"campaign": campaign, "occurrence": occurrence, "low": low, "high": high}
    if dialect == "postgresql":
        enroll = _ENROLL.format(held=_PG_HELD)
        sql = _SENDS.format(variant=_PG_VARIANT)
    else:
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.create_function(
            "dripper_variant",
            4,
            lambda c, s, e, n: variant_for(e, c, s, n),
            deterministic=True,
        )
        enroll = _ENROLL.format(held=_SQLITE_HELD)
        sql = _SENDS.format(variant=_SQLITE_VARIANT)
    # The campaign again under a name of its own: PostgreSQL types each parameter once,
    # and here it is both a column's varchar and the hash's text.
    held = {"threshold": holdout, "held_campaign": campaign}
    created = conn.execute(sa.text(enroll), {**names, **held}).rowcount
    sends = sa.text(sql).bindparams(sa.bindparam("now", now, type_=UTCDateTime))
    conn.execute(sends, names)
    conn.execute(_STEPS.delete())
    conn.execute(_ZONES.delete())
    return int(created)


def id_ranges(conn: Connection, parts: int) -> list[tuple[int, int]]:
    """The customers' ids cut into `parts` ranges of about equal width, [low, high) each,
    together covering every id there is."""
    low, high = conn.execute(sa.text("SELECT min(id), max(id) FROM customers")).one()
    if low is None or parts <= 1:
        return [(0, ALL_IDS)]
    width = max(1, (high - low + parts) // parts)
    cuts = [low + width * i for i in range(1, parts)]
    return list(zip([0, *cuts], [*cuts, ALL_IDS], strict=True))


def zones(
    conn: Connection, *, known: Collection[str] = (), ids: tuple[int, int] = (0, ALL_IDS)
) -> list[str]:
    """The time-zone values ("" for none) of subscribed customers not in `known`: a
    handful, by one scan of the customers with an id in `ids` (the part of the run the
    caller writes). The planner asks again after enrolling, in case a customer with a new
    zone arrived meanwhile."""
    c = sa.table("customers", sa.column("id"), sa.column("timezone"), sa.column("status"))
    value = sa.func.coalesce(c.c.timezone, "")
    low, high = ids
    query = (
        sa.select(value)
        .where(c.c.status == "subscribed", c.c.id >= low, c.c.id < high)
        .distinct()
    )
    return sorted(set(conn.execute(query).scalars()) - set(known))
