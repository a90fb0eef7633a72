"""Notes on the customer's sheet (DESIGN 16): `dripper customers note EMAIL "TEXT"` adds a
dated note; `customers show` lists them. Erased with the customer (`forget`).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customer_notes",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "customer_id",
            ID,
            sa.ForeignKey(
                "customers.id", ondelete="CASCADE", name="fk_customer_notes_customer_id_customers"
            ),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False, server_default=""),
        sa.Index("ix_customer_notes_customer", "customer_id", "at"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("customer_notes")
