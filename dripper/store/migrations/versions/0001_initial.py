"""The initial schema: customers, events, enrollments, outbox, delivery attempts, tracking,
suppressions and campaign state.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Types are spelled out here rather than imported from dripper.store, so that this
migration keeps creating exactly this schema whatever the models become later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
AUTOINCREMENT = {"sqlite_autoincrement": True}


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True)


def _fk(column: str, target: str, table: str, *, nullable: bool = False) -> sa.Column[int]:
    referred = target.split(".")[0]
    return sa.Column(
        column,
        ID,
        sa.ForeignKey(target, ondelete="CASCADE", name=f"fk_{table}_{column}_{referred}"),
        nullable=nullable,
    )


def _customer_fk(table: str, *, nullable: bool = False) -> sa.Column[int]:
    return _fk("customer_id", "customers.id", table, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "customers",
        _id(),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("first_name", sa.Text, nullable=False, server_default=""),
        sa.Column("last_name", sa.Text, nullable=False, server_default=""),
        sa.Column("timezone", sa.String(64)),
        sa.Column("locale", sa.String(64)),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="subscribed"),
        sa.Column("unsubscribed_at", TIME),
        sa.Column("purchases", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("total_spent_cents", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("first_purchase_at", TIME),
        sa.Column("last_purchase_at", TIME),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("email", name="uq_customers_email"),
        **AUTOINCREMENT,
    )
    op.create_table(
        "events",
        _id(),
        _customer_fk("events"),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        **AUTOINCREMENT,
    )
    op.create_index("ix_events_customer_type_at", "events", ["customer_id", "type", "at"])
    op.create_index("ix_events_type_at", "events", ["type", "at"])
    op.create_table(
        "enrollments",
        _id(),
        _customer_fk("enrollments"),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("occurrence", sa.String(100), nullable=False),
        sa.Column("enrolled_at", TIME, nullable=False),
        sa.Column("event_id", ID),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("ended_at", TIME),
        sa.Column("end_reason", sa.Text),
        sa.Column("converted_at", TIME),
        sa.Column("converted_event_id", ID),
        sa.Column("attributed_step", sa.String(100)),
        sa.UniqueConstraint(
            "customer_id", "campaign", "occurrence", name="uq_enrollments_customer_campaign_occ"
        ),
        **AUTOINCREMENT,
    )
    op.create_index("ix_enrollments_campaign_status", "enrollments", ["campaign", "status"])
    op.create_table(
        "outbox",
        _id(),
        _fk("enrollment_id", "enrollments.id", "outbox"),
        _customer_fk("outbox"),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("occurrence", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="planned"),
        sa.Column("variant", sa.Integer),
        sa.Column("message_id", sa.String(255)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("lease_owner", sa.String(255)),
        sa.Column("lease_until", TIME),
        sa.Column("reason", sa.Text),
        sa.Column("sent_at", TIME),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint(
            "customer_id", "campaign", "occurrence", "step", name="uq_outbox_send_once"
        ),
        sa.UniqueConstraint("message_id", name="uq_outbox_message_id"),
        **AUTOINCREMENT,
    )
    op.create_index("ix_outbox_claim", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_enrollment", "outbox", ["enrollment_id"])
    op.create_index("ix_outbox_campaign_step", "outbox", ["campaign", "step"])
    op.create_table(
        "delivery_attempts",
        _id(),
        _fk("outbox_id", "outbox.id", "delivery_attempts"),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME),
        sa.Column("outcome", sa.String(16)),
        sa.Column("smtp_code", sa.Integer),
        sa.Column("smtp_enhanced", sa.String(16)),
        sa.Column("smtp_reply", sa.Text),
        sa.Column("error", sa.Text),
        **AUTOINCREMENT,
    )
    op.create_index("ix_delivery_attempts_outbox", "delivery_attempts", ["outbox_id"])
    op.create_table(
        "tracking_events",
        _id(),
        _fk("outbox_id", "outbox.id", "tracking_events", nullable=True),
        _customer_fk("tracking_events", nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("url", sa.Text),
        sa.Column("user_agent", sa.Text),
        sa.Column("data", JSON),
        **AUTOINCREMENT,
    )
    op.create_index("ix_tracking_events_outbox", "tracking_events", ["outbox_id"])
    op.create_index("ix_tracking_events_customer", "tracking_events", ["customer_id"])
    op.create_index("ix_tracking_events_kind_at", "tracking_events", ["kind", "at"])
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_table(
        "campaign_state",
        sa.Column("campaign", sa.String(100), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("paused_reason", sa.Text),
        sa.Column("data", JSON, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "campaign_state",
        "suppressions",
        "tracking_events",
        "delivery_attempts",
        "outbox",
        "enrollments",
        "events",
        "customers",
    ):
        op.drop_table(table)
