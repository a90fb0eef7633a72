"""Win-backs that come back (DESIGN 14): `trigger: {when: ..., repeat: true}` enrolls again
each time a customer starts to match after having stopped. `enrollments.lapsed_at` is when
a repeating trigger's occurrence was first seen not matching: the next match starts a new
occurrence. NULL for everything else.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("enrollments", sa.Column("lapsed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("lapsed_at")
