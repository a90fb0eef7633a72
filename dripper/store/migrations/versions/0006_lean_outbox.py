"""A leaner outbox: what every planned email costs to write. `outbox.customer_id` keeps
its value (the send-once key and the stats read it) but loses its foreign key to
customers, which `enrollment_id` already implies with the same cascade; the index on
(campaign, step) goes (nothing looks sends up by it: the stats scan them).

On SQLite dropping a foreign key copies the table; migrate.py turns foreign keys off
around it, so the copy never cascades into delivery attempts or hits.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK = "fk_outbox_customer_id_customers"


def upgrade() -> None:
    op.drop_index("ix_outbox_campaign_step", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.create_foreign_key(FK, "customers", ["customer_id"], ["id"], ondelete="CASCADE")
    op.create_index("ix_outbox_campaign_step", "outbox", ["campaign", "step"])
