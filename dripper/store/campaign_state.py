"""Campaign state: what the planner remembers per campaign (schedule runs, editions used,
the last date-trigger scan) and what the daemons share about it (paused or not, the run
of policy rejections that pauses it).

The run of policy rejections lives here, in the database, not in a daemon's memory: two
daemons on one PostgreSQL database count together, and a restart forgets nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.engine import dialect_of
from dripper.store.schema import campaign_state, outbox
from dripper.store.sql import insert_ignoring


def _ensure_row(conn: Connection, campaign: str) -> None:
    dialect = dialect_of(conn)
    stmt = insert_ignoring(dialect, campaign_state, ("campaign",))
    conn.execute(stmt, {"campaign": campaign, "paused": False, "data": {}})


# Why a campaign is paused, besides the policy pause (whose reason quotes the rejection).
BY_HAND = "paused with `dripper pause`"
NO_FILE = "its campaign file is gone: its sends wait until the file is back"


def pause_campaign(conn: Connection, campaign: str, reason: str) -> None:
    """Pause a campaign; its run of policy rejections starts again from 0."""
    _ensure_row(conn, campaign)
    conn.execute(
        sa.update(campaign_state)
        .where(campaign_state.c.campaign == campaign)
        .values(paused=True, paused_reason=reason, policy_hits=0)
    )


def count_policy_hits(
    conn: Connection, campaign: str, *, hits: int, reset: bool
) -> int:
    """Add `hits` policy rejections to the campaign's run (after ending the run first when
    `reset`: a delivery came in between) and return the run's length. One statement, so
    daemons counting at once each see the other's hits (the row is locked until commit)."""
    c = campaign_state.c
    if hits == 0:
        if reset:  # only a run in progress is written: most batches change nothing here
            conn.execute(
                sa.update(campaign_state)
                .where(c.campaign == campaign, c.policy_hits != 0)
                .values(policy_hits=0)
            )
        return 0
    _ensure_row(conn, campaign)
    value = sa.literal(hits) if reset else c.policy_hits + hits
    counted = conn.execute(
        sa.update(campaign_state)
        .where(c.campaign == campaign)
        .values(policy_hits=value)
        .returning(c.policy_hits)
    ).scalar_one()
    return int(counted)


def resume_campaign(conn: Connection, campaign: str) -> bool:
    return bool(
        conn.execute(
            sa.update(campaign_state)
            .where(campaign_state.c.campaign == campaign, campaign_state.c.paused.is_(True))
            .values(paused=False, paused_reason=None)
        ).rowcount
    )


def paused_campaigns(conn: Connection) -> dict[str, str]:
    query = sa.select(campaign_state.c.campaign, campaign_state.c.paused_reason).where(
        campaign_state.c.paused.is_(True)
    )
    return {name: reason or "" for name, reason in conn.execute(query)}


def load_state(conn: Connection, campaign: str) -> dict[str, Any]:
    data = conn.execute(
        sa.select(campaign_state.c.data).where(campaign_state.c.campaign == campaign)
    ).scalar()
    return dict(data) if isinstance(data, Mapping) else {}


def save_state(conn: Connection, campaign: str, data: Mapping[str, Any]) -> None:
    dialect = dialect_of(conn)
    stmt = insert_ignoring(dialect, campaign_state, ("campaign",))
    conn.execute(stmt, {"campaign": campaign, "paused": False, "data": dict(data)})
    conn.execute(
        sa.update(campaign_state)
        .where(campaign_state.c.campaign == campaign)
        .values(data=dict(data))
    )


def state_of(reason: str | None) -> str:
    """The state `dripper campaigns` shows for a paused campaign's reason."""
    if reason == BY_HAND:
        return "paused"
    if reason == NO_FILE:
        return "no file"
    return "policy-paused"


def overview(conn: Connection) -> dict[str, tuple[int, datetime | None]]:
    """Each campaign that has sends: how many wait (planned), and the last one sent."""
    o = outbox.c
    query = sa.select(
        o.campaign,
        sa.func.count().filter(o.status == "planned"),
        sa.func.max(o.sent_at),
    ).group_by(o.campaign)
    return {name: (int(pending), last) for name, pending, last in conn.execute(query)}
