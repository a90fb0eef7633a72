"""What `dripper stats` reads in one pass: tracking rows carry their email's campaign, step
and A/B variant; each send carries when a person first opened and clicked it (both filled
in for the rows already there); customers carry their spend percentile (0-100, ties
alike) and rank (1 = the best), refreshed by the planner.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Nullable columns without defaults: no table rebuild on SQLite.
    op.add_column("tracking_events", sa.Column("campaign", sa.String(100)))
    op.add_column("tracking_events", sa.Column("step", sa.String(100)))
    op.add_column("tracking_events", sa.Column("variant", sa.Integer))
    # One pass over the hits (a row value: SQLite 3.15+, PostgreSQL), not one per column.
    op.execute(
        "UPDATE tracking_events SET (campaign, step, variant) = "
        "(SELECT outbox.campaign, outbox.step, outbox.variant FROM outbox "
        "WHERE outbox.id = tracking_events.outbox_id) WHERE outbox_id IS NOT NULL"
    )
    # Soft bounces were recorded as kind `bounce` (with data.class `bounce_soft`): they
    # are their own kind now, so `bounced` counts hard bounces only.
    soft = (
        "data ->> 'class' = 'bounce_soft'"
        if op.get_bind().dialect.name == "postgresql"
        else "json_extract(data, '$.class') = 'bounce_soft'"
    )
    op.execute(
        f"UPDATE tracking_events SET kind = 'soft_bounce' WHERE kind = 'bounce' AND {soft}"  # noqa: S608
    )
    op.create_index("ix_tracking_events_campaign_step", "tracking_events", ["campaign", "step"])
    op.add_column("outbox", sa.Column("opened_at", TIME))
    op.add_column("outbox", sa.Column("clicked_at", TIME))
    # Answers recorded before this release implied no open: they count as one now.
    for column, kinds in (("opened_at", "'open', 'answer'"), ("clicked_at", "'click', 'answer'")):
        first = (
            f"SELECT min(t.at) FROM tracking_events t WHERE t.outbox_id = outbox.id "  # noqa: S608
            f"AND t.kind IN ({kinds}) AND t.machine = false"
        )
        op.execute(
            f"UPDATE outbox SET {column} = ({first}) "  # noqa: S608
            f"WHERE EXISTS ({first})"
        )
    op.add_column("customers", sa.Column("spend_percentile", sa.Integer))
    op.add_column("customers", sa.Column("spend_rank", sa.Integer))


def downgrade() -> None:
    op.execute("UPDATE tracking_events SET kind = 'bounce' WHERE kind = 'soft_bounce'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("clicked_at")
        batch.drop_column("opened_at")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("spend_rank")
        batch.drop_column("spend_percentile")
    op.drop_index("ix_tracking_events_campaign_step", "tracking_events")
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_column("variant")
        batch.drop_column("step")
        batch.drop_column("campaign")
