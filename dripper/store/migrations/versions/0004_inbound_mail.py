"""Mail that comes back: each inbound message recorded once (by its Message-ID), with its
class and what it belonged to; and how far each polled mailbox has been read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", ID, primary_key=True),
        # sha256 of the Message-ID (of the whole message when it has none): recorded once
        sa.Column("message_key", sa.String(64), nullable=False),
        sa.Column("message_id", sa.Text),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("customer_id", ID),  # erased with the customer by `forget`
        sa.Column("outbox_id", ID),
        sa.Column("address", sa.String(320)),  # the address it concerns, lower-case
        sa.Column("status", sa.String(16)),  # a report's status code, like 5.1.1
        sa.Column("weak", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("subject", sa.Text),
        sa.Column("text", sa.Text),  # a reply's own words (its quoted part apart)
        sa.Column("reason", sa.Text),
        sa.Column("notify", sa.String(16)),  # pending / sent / failed: forwarded to a person
        sa.Column("answered_at", TIME),  # a person answered this reply
        sa.UniqueConstraint("message_key", name="uq_inbound_messages_message_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_inbound_messages_kind_at", "inbound_messages", ["kind", "received_at"])
    op.create_index(
        "ix_inbound_messages_address", "inbound_messages", ["address", "kind", "received_at"]
    )
    op.create_index("ix_inbound_messages_customer", "inbound_messages", ["customer_id"])
    op.create_table(
        "mailbox_state",
        sa.Column("mailbox", sa.String(255), primary_key=True),  # user@host:port/folder
        sa.Column("uidvalidity", sa.BigInteger, nullable=False),
        sa.Column("last_uid", sa.BigInteger, nullable=False),
        sa.Column("checked_at", TIME),
    )


def downgrade() -> None:
    op.drop_table("mailbox_state")
    op.drop_table("inbound_messages")
