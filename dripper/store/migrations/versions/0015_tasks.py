"""Tasks for a person and webhook steps (DESIGN 16): the outbox says what each row is
(`kind`: email, task, webhook; an unsubscribe from email spares tasks and webhooks), a task
is stored when its step falls due, and each person's morning digest is sent once a day.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="email"))
    op.create_table(
        "tasks",
        sa.Column("id", ID, primary_key=True),
        # The outbox row whose step made it: at most one task per planned step, however
        # often a crashed daemon's claim is taken again.
        sa.Column(
            "outbox_id",
            ID,
            sa.ForeignKey("outbox.id", ondelete="CASCADE", name="fk_tasks_outbox_id_outbox"),
            nullable=False,
            unique=True,
        ),
        sa.Column(
            "customer_id",
            ID,
            sa.ForeignKey(
                "customers.id", ondelete="CASCADE", name="fk_tasks_customer_id_customers"
            ),
            nullable=False,
        ),
        sa.Column("campaign", sa.String(100), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("assignee", sa.String(40), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("due_at", WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="open"),
        sa.Column("closed_at", WHEN),
        sa.Column("closed_by", sa.String(64)),
        sa.Column("note", sa.Text),
        # The random part of its one-click "done" link (tokens: kind t).
        sa.Column("link_key", sa.String(32), nullable=False, unique=True),
        sa.Index("ix_tasks_open", "status", "due_at"),
        sa.Index("ix_tasks_customer", "customer_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "task_digests",
        sa.Column("person", sa.String(40), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("sent_at", WHEN, nullable=False),
        sa.Column("tasks", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("task_digests")
    op.drop_table("tasks")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("kind")
