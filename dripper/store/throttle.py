"""The sending rate shared by every daemon on one database (`[transport] rate_per_second`).

One row (in `campaign_state`, under a name no campaign can have) holds the moment the
next send slot opens, in database time. A daemon reserves a block of slots in a short
transaction (the row locked `FOR UPDATE` on PostgreSQL; SQLite has one writer anyway) and
paces that block itself, so the database is asked once per block, not once per email,
and all daemons together never exceed the rate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.deliveries import db_clock
from dripper.store.engine import dialect_of
from dripper.store.schema import campaign_state
from dripper.store.sql import insert_ignoring

ROW = "~send-rate"  # campaign names are [a-z0-9-]+: this one cannot clash


def reserve(conn: Connection, count: int, rate: float) -> float:
    """Reserve `count` send slots at `rate` per second; returns how many seconds from now
    the first slot opens (0 when it is open already). Slots are `1/rate` apart."""
    dialect = dialect_of(conn)
    conn.execute(
        insert_ignoring(dialect, campaign_state, ("campaign",)),
        {"campaign": ROW, "paused": False, "data": {}},
    )
    query = sa.select(campaign_state.c.data).where(campaign_state.c.campaign == ROW)
    if dialect == "postgresql":
        query = query.with_for_update()
    data = dict(conn.execute(query).scalar_one() or {})
    now = db_clock(conn)
    opens = now
    if isinstance(data.get("next"), str):
        opens = max(now, datetime.fromisoformat(data["next"]))
    data["next"] = (opens + timedelta(seconds=count / rate)).isoformat()
    conn.execute(
        sa.update(campaign_state).where(campaign_state.c.campaign == ROW).values(data=data)
    )
    return (opens - now).total_seconds()
