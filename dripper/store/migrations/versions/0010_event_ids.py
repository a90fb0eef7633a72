"""Event ids (DESIGN 12): an event may carry the id its sender gave it (a shop's order
number, a webhook's order id), and `(type, id)` is unique, so a webhook delivered twice or
a file imported twice records nothing the second time. A unique index and not a look-up
before an insert: two `serve` workers racing with the same order still record one.

Events without an id keep NULL, which both databases let repeat under a unique index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("ext_id", sa.String(200)))
    op.create_index("uq_events_type_ext_id", "events", ["type", "ext_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_events_type_ext_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("ext_id")
