"""Alembic environment for dripper's own migrations.

dripper runs migrations itself (`dripper db upgrade`, or silently on a fresh database) and
hands over an open connection in `config.attributes["connection"]`, inside a transaction it
commits. A developer writing a new migration can build a Config the same way
(`dripper.store.migrate.alembic_config()`) and set the `sqlalchemy.url` main option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from dripper.store.schema import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: changes are done by copying the table.
        render_as_batch=connection.dialect.name == "sqlite",
        # dripper emits BEGIN itself on SQLite, so DDL there is transactional too.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from dripper.store import open_store

    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set the sqlalchemy.url option or pass a connection")
    store = open_store(url)
    try:
        with store.engine.begin() as conn:
            run(conn)
    finally:
        store.close()


if context.is_offline_mode():
    raise SystemExit("dripper migrations run online only")
main()
