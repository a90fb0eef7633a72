"""Subscribers (DESIGN 13): pending signups waiting for their confirmation, the consent
record of every change of a customer's marketing, and the topics a customer chose.

A signup is not a customer: nothing is stored in `customers` before the person confirms.
Its `key` is random and only travels signed (`/s/<token>`), so a copy of the database
confirms nobody. `customers.topics` is NULL for "every topic" (a topic added later reaches
everyone who never chose), else the list the person kept.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("customers", sa.Column("topics", JSON))
    op.create_table(
        "signups",
        sa.Column("id", ID, primary_key=True),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("first_name", sa.Text, nullable=False, server_default=""),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("topics", JSON),
        sa.Column("locale", sa.String(64)),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.Text),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("message_id", sa.String(255)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("lease_until", TIME),
        sa.Column("sent_at", TIME),
        sa.Column("confirmed_at", TIME),
        sa.UniqueConstraint("key", name="uq_signups_key"),
        sa.Index("ix_signups_claim", "status", "next_attempt_at"),
        sa.Index("ix_signups_email", "email", "created_at"),
        sa.Index("ix_signups_ip", "ip", "created_at"),
        sa.Index("ix_signups_sent", "sent_at"),
        sa.Index("ix_signups_expires", "expires_at"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "consent_records",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "customer_id",
            ID,
            sa.ForeignKey(
                "customers.id", ondelete="CASCADE", name="fk_consent_records_customer_id_customers"
            ),
            nullable=False,
        ),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("marketing", sa.String(16), nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.Text),
        sa.Column("text_hash", sa.String(64)),
        sa.Column("topics", JSON),
        sa.Index("ix_consent_records_customer", "customer_id", "at"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("consent_records")
    op.drop_table("signups")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("topics")
