"""Schema versions: Alembic migrations shipped inside the package, run programmatically.

Alembic is imported only when a migration has to run (or the database is at a revision
this module cannot judge by itself): a command on an up-to-date database compares one
row with `HEAD` and goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from dripper.errors import StoreError
from dripper.store.engine import BEGIN_MODE, Dialect

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest migration in `migrations/versions`; a test keeps the two in sync.
HEAD = "0016"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
# Any constant: holders of this PostgreSQL advisory lock are migrating dripper's schema.
_MIGRATION_LOCK = 0x6472697070657200  # "dripper\0"


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database dripper never touched."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def ensure_schema(engine: Engine, dialect: Dialect) -> None:
    """Make the schema usable: create it on an empty database, upgrade a SQLite file that is
    behind, refuse a shared PostgreSQL database that is behind (others may be using it)."""
    with engine.connect() as conn:
        revision = _revision(conn)
        if revision == HEAD:
            return
        has_tables = bool(sa.inspect(conn).get_table_names())
    if revision is None:
        if has_tables:
            raise StoreError(
                "the database has tables but none of dripper's: check the database URL, "
                "or run `dripper db upgrade` to add dripper's tables to this database"
            )
        upgrade(engine, dialect)
        return
    if not _known(revision):
        raise StoreError(
            f"database schema is at {revision}, which this version of dripper does not know "
            f"(it needs {HEAD}): upgrade dripper"
        )
    if dialect == "postgresql":
        raise StoreError(
            f"database schema is at {revision}, dripper needs {HEAD}: run `dripper db upgrade`"
        )
    upgrade(engine, dialect)


def upgrade(engine: Engine, dialect: Dialect, revision: str = "head") -> None:
    """Apply migrations up to `revision` in one transaction (on both databases)."""
    from alembic import command

    _run(engine, dialect, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, dialect: Dialect, revision: str) -> None:
    """Undo migrations down to `revision` ("base": nothing left). For tests and repairs."""
    from alembic import command

    _run(engine, dialect, lambda config: command.downgrade(config, revision))


def _run(engine: Engine, dialect: Dialect, step: Callable[[Config], object]) -> None:
    from alembic.util import CommandError

    with engine.connect() as conn:
        if dialect == "sqlite":
            # SQLite migrations that change a table copy it and drop the old one; with
            # foreign keys on, that DROP would cascade-delete every child row. The pragma
            # only takes effect outside a transaction, so set it on the raw connection.
            _sqlite_pragma(conn, "PRAGMA foreign_keys=OFF")
            conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
        try:
            with conn.begin():
                if dialect == "postgresql":
                    # Two processes starting on a fresh database: the second waits here,
                    # then finds the schema at head and does nothing.
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                config = alembic_config()
                config.attributes["connection"] = conn
                step(config)
                if dialect == "sqlite":
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if broken is not None:
                        raise StoreError(f"migration left a broken foreign key: {tuple(broken)}")
        except CommandError as error:
            raise StoreError(f"cannot migrate the database schema: {error}") from None
        except exc.DBAPIError as error:
            reason = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
            raise StoreError(f"cannot migrate the database schema: {reason}") from None
        finally:
            if dialect == "sqlite":
                _sqlite_pragma(conn, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(conn: Connection, pragma: str) -> None:
    conn.connection.driver_connection.execute(pragma)  # type: ignore[union-attr]


def alembic_config() -> Config:
    """An Alembic configuration without an alembic.ini: works from an installed wheel."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    return config


def script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def _known(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return script_directory().get_revision(revision) is not None
    except CommandError:
        return False
