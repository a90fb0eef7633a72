"""A complaint suppresses with the reason DESIGN 8 names, `complained` (it was stored as
`complaint`, the name of the inbound class).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE suppressions SET reason = 'complained' WHERE reason = 'complaint'")


def downgrade() -> None:
    op.execute("UPDATE suppressions SET reason = 'complaint' WHERE reason = 'complained'")
