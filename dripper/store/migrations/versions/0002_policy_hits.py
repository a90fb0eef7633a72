"""Campaign state counts each campaign's run of policy rejections (5.7.x), so that daemons
sharing a database pause a campaign together and a restart forgets nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN with a constant default: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column(
        "campaign_state",
        sa.Column("policy_hits", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def downgrade() -> None:
    with op.batch_alter_table("campaign_state") as batch:
        batch.drop_column("policy_hits")
