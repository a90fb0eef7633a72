"""The domains of the Message-IDs given so far (store/message_domains.py), read once
from the outbox: from now on a delivery whose From domain changed is found by the unique
index, never by a scan of the outbox by prefix (issue 23).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATE = "~domains"


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        domain = "split_part(message_id, '@', 2)"
        newest = "max(id)"
    else:
        domain = "substr(message_id, instr(message_id, '@') + 1)"
        newest = "max(id)"
    rows = conn.execute(
        sa.text(
            f"SELECT {domain} AS domain, {newest} AS newest FROM outbox "  # noqa: S608
            f"WHERE message_id IS NOT NULL GROUP BY {domain} ORDER BY newest DESC"
        )
    ).all()
    domains = [str(r.domain) for r in rows if r.domain][:16]
    if not domains:
        return
    data = json.dumps({"domains": domains})
    cast = "CAST(:data AS JSONB)" if conn.dialect.name == "postgresql" else ":data"
    conn.execute(
        sa.text(
            "INSERT INTO campaign_state (campaign, paused, data, policy_hits) "  # noqa: S608
            f"VALUES (:name, :paused, {cast}, 0)"
        ),
        {"name": STATE, "paused": False, "data": data},
    )


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM campaign_state WHERE campaign = '~domains'"))
