"""Retention science (DESIGN 17): an enrollment held out of its campaign (`holdout:`), the
lifetime models' values per customer (`p_alive`, expected purchases, predicted CLV; null
until a fit), and each fit's parameters.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PREDICTED = ("p_alive", "expected_purchases_90d", "expected_purchases_365d", "predicted_clv_365d")


def upgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("customers") as batch:
        for name in PREDICTED:
            batch.add_column(sa.Column(name, sa.Float))
    op.create_table(
        "prediction_fits",
        sa.Column("id", ID, primary_key=True),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fitted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("customers", sa.Integer, nullable=False),
        sa.Column("repeat_buyers", sa.Integer, nullable=False),
        sa.Column("purchase_model", sa.JSON),
        sa.Column("spend_model", sa.JSON),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("prediction_fits")
    with op.batch_alter_table("customers") as batch:
        for name in PREDICTED:
            batch.drop_column(name)
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("held")
