"""What became of webhook steps (DESIGN 16), for `stats`: their outbox rows counted by
outcome per step. (Their attempts, with the receiver's status and words, are in
`delivery_attempts` like any send's.)"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dripper.store.schema import outbox


def outcomes(conn: Connection) -> dict[tuple[str, str], dict[str, int]]:
    """Per (campaign, step): delivered, retrying (planned after a failed attempt), failed,
    cancelled, skipped."""
    o = outbox.c
    query = (
        sa.select(
            o.campaign,
            o.step,
            sa.func.count().filter(o.status == "sent"),
            sa.func.count().filter(o.status == "planned", o.attempts > 0),
            sa.func.count().filter(o.status == "failed"),
            sa.func.count().filter(o.status == "cancelled"),
            sa.func.count().filter(o.status == "skipped"),
        )
        .where(o.kind == "webhook")
        .group_by(o.campaign, o.step)
    )
    return {
        (campaign, step): {
            "delivered": sent,
            "retrying": retrying,
            "failed": failed,
            "cancelled": cancelled,
            "skipped": skipped,
        }
        for campaign, step, sent, retrying, failed, cancelled, skipped in conn.execute(query)
    }
