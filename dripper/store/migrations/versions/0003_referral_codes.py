"""Each customer may have a referral code: short, unguessable, stable, unique. It is given
when a first email that could show it is claimed for sending; a purchase that names it
records who referred the buyer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: ADD COLUMN without a table rebuild on SQLite (a rebuild of
    # customers would cascade into every table that refers to it).
    op.add_column("customers", sa.Column("referral_code", sa.String(32)))
    op.create_index("ix_customers_referral_code", "customers", ["referral_code"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_customers_referral_code", "customers")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("referral_code")
