"""PostgreSQL tells `serve` which deliveries exist, so a pixel or a redirect need not ask.

Two triggers on `outbox` send NOTIFY on the channel `dripper_deliveries`, delivered at
commit to every listening `dripper serve` (dripper.store.known), each ending with the
schema of the table (a channel is one per database; shops may share one):
- `sent <message-id> <schema>` when a delivery gets its Message-ID (claimed for sending:
  the moment its tokens can exist), one per row;
- `deleted <nonce> <schema>` after any statement that deletes or truncates sends
  (`forget`, cascades, or a person at a psql prompt), or changes a Message-ID that was
  set: `serve` then forgets everything it knew and asks the database again;
- `stop <nonce> <schema>` from the downgrade, before the triggers go.
A trigger and not a line in `forget`: no way of removing a send can skip it.
Measured (bench/README.md): the lookup these save cost `serve` 35-50 us and PostgreSQL
20-25 us of CPU per hit, even batched; each `sent` costs a claim about 15 us a send.

SQLite has no NOTIFY and needs none: its lookup is a read of a local file (6 us).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# dripper.store.known reads these payloads and checks these two triggers are there.
# PostgreSQL merges identical notifications of one transaction into the first: a delete, a
# claim and another delete would arrive as the delete and the claim, and the claimed send
# would stay known. A nonce keeps every delete's notice. (Inline, not a function of ours:
# a session with another search_path would not find it, and its DELETE would fail.)
NONCE = "md5(clock_timestamp()::text || random()::text)"
UP = [
    """
    CREATE FUNCTION dripper_delivery_sent() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.message_id IS NULL THEN
            PERFORM pg_notify(
                'dripper_deliveries', 'sent ' || NEW.message_id || ' ' || TG_TABLE_SCHEMA
            );
        ELSE  -- a known Message-ID changed or went: as good as deleted
            PERFORM pg_notify(
                'dripper_deliveries', 'deleted ' || {NONCE} || ' ' || TG_TABLE_SCHEMA
            );
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION dripper_deliveries_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify(
            'dripper_deliveries', 'deleted ' || {NONCE} || ' ' || TG_TABLE_SCHEMA
        );
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER dripper_delivery_sent AFTER UPDATE OF message_id ON outbox FOR EACH ROW
        WHEN (NEW.message_id IS DISTINCT FROM OLD.message_id)
        EXECUTE FUNCTION dripper_delivery_sent()
    """,
    """
    CREATE TRIGGER dripper_deliveries_deleted AFTER DELETE OR TRUNCATE ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION dripper_deliveries_deleted()
    """,
]
DOWN = [
    # Listening serves stop trusting their memory before the triggers go (they look for
    # the triggers again, find none, and ask the database from then on).
    "SELECT pg_notify('dripper_deliveries', 'stop ' || {NONCE} || ' ' || "
    "(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = 'outbox'::regclass))",
    "DROP TRIGGER dripper_deliveries_deleted ON outbox",
    "DROP TRIGGER dripper_delivery_sent ON outbox",
    "DROP FUNCTION dripper_deliveries_deleted()",
    "DROP FUNCTION dripper_delivery_sent()",
]


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in UP:
            op.execute(statement.replace("{NONCE}", NONCE))


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for statement in DOWN:
            op.execute(statement.replace("{NONCE}", NONCE))
