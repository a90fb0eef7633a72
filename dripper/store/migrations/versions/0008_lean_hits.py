"""Leaner hits: what every open and click costs to write. `tracking_events.customer_id`
keeps its value but loses its foreign key to customers, and its index now holds only the
rows tied to no email (a referral visit): a hit's email already names the customer (the
`outbox_id` foreign key cascades with it), and `forget` deletes both kinds of rows itself.
Measured (bench/README.md): on PostgreSQL the foreign key's check and the index's random
page were a fifth of the database's work per hit; on SQLite the index was one of the three
random pages each hit dirtied.

On SQLite dropping a foreign key copies the table; migrate.py turns foreign keys off
around it, so the copy never cascades.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_tracking_events_customer_id_customers"
IX = "ix_tracking_events_customer"
NO_EMAIL = sa.text("outbox_id IS NULL")


def upgrade() -> None:
    op.drop_index(IX, "tracking_events")
    with op.batch_alter_table("tracking_events") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
    op.create_index(
        IX, "tracking_events", ["customer_id"], sqlite_where=NO_EMAIL, postgresql_where=NO_EMAIL
    )


def downgrade() -> None:
    op.drop_index(IX, "tracking_events")
    with op.batch_alter_table("tracking_events") as batch:
        batch.create_foreign_key(FK, "customers", ["customer_id"], ["id"], ondelete="CASCADE")
    op.create_index(IX, "tracking_events", ["customer_id"])
