"""Migrations and schema checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dripper.errors import StoreError
from dripper.store import HEAD, Store, migrate, open_store
from dripper.store.schema import metadata

TABLES = {
    "customers",
    "events",
    "enrollments",
    "outbox",
    "delivery_attempts",
    "tracking_events",
    "suppressions",
    "campaign_state",
    "inbound_messages",
    "mailbox_state",
    "signups",
    "consent_records",
    "customer_notes",
    "tasks",
    "task_digests",
    "prediction_fits",
}

# A migration after the real head: the database is then one revision behind.
REAL_HEAD = migrate.HEAD
PROBE = "9999"
PROBE_MIGRATION = f"""
from alembic import op
import sqlalchemy as sa

revision = "{PROBE}"
down_revision = "{REAL_HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("probe", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("probe")
"""


def table_names(store: Store) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


def test_upgrade_from_empty_creates_every_table(db_url: str) -> None:
    """`upgrade()` on an empty database creates every table and records HEAD."""
    store = open_store(db_url)
    try:
        assert table_names(store) == set()
        assert store.current_revision() is None
        store.upgrade()
        assert table_names(store) == TABLES | {"alembic_version"}
        assert store.current_revision() == HEAD
        store.upgrade()  # again: nothing to do
        assert store.current_revision() == HEAD
    finally:
        store.close()


def test_head_constant_matches_the_migrations() -> None:
    """The HEAD constant that spares commands an Alembic import is Alembic's own head."""
    assert migrate.script_directory().get_current_head() == HEAD


def test_migrations_create_what_the_models_describe(store: Store) -> None:
    """Alembic finds no difference between the migrated database and schema.py."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_downgrade_to_base_and_up_again(store: Store) -> None:
    """The initial migration can be undone completely and applied again."""
    migrate.downgrade(store.engine, store.dialect, "base")
    assert table_names(store) <= {"alembic_version"}
    assert store.current_revision() is None
    store.upgrade()
    assert table_names(store) == TABLES | {"alembic_version"}


def test_ensure_schema_on_an_empty_database_creates_it(db_url: str) -> None:
    """A command on a fresh database needs no ceremony: the schema appears silently."""
    store = open_store(db_url)
    try:
        store.ensure_schema()
        assert store.current_revision() == HEAD
        assert table_names(store) >= TABLES
    finally:
        store.close()


def test_processes_starting_together_on_a_fresh_database(db_url: str) -> None:
    """Several stores creating the schema at the same moment all succeed, and it is
    created once."""
    stores = [open_store(db_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(lambda s: s.ensure_schema(), stores))
        assert {s.current_revision() for s in stores} == {HEAD}
        with stores[0].engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar()
        assert versions == 1
    finally:
        for store in stores:
            store.close()


def test_ensure_schema_at_head_does_not_import_alembic(store: Store, db_url: str) -> None:
    """Importing the store and checking an up-to-date schema never loads Alembic."""
    code = (
        "import sys\n"
        "from dripper.store import open_store\n"
        "assert 'alembic' not in sys.modules, 'import dripper.store loaded alembic'\n"
        f"store = open_store({db_url!r})\n"
        "store.ensure_schema()\n"
        "store.close()\n"
        "assert 'alembic' not in sys.modules, 'ensure_schema at head loaded alembic'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def with_probe_migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make dripper believe it ships a second migration, so the database is behind."""
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / f"{PROBE}_probe.py").write_text(PROBE_MIGRATION)
    monkeypatch.setattr(migrate, "MIGRATIONS", folder)
    monkeypatch.setattr(migrate, "HEAD", PROBE)


def test_ensure_schema_when_behind(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind: a SQLite file is upgraded on the spot; a shared PostgreSQL database is not,
    and the error says what to run."""
    with_probe_migration(tmp_path, monkeypatch)
    if store.dialect == "sqlite":
        store.ensure_schema()
        assert store.current_revision() == PROBE
        assert "probe" in table_names(store)
    else:
        with pytest.raises(StoreError) as caught:
            store.ensure_schema()
        assert str(caught.value) == (
            f"database schema is at {REAL_HEAD}, dripper needs {PROBE}: run `dripper db upgrade`"
        )
        assert store.current_revision() == REAL_HEAD
        store.upgrade()
        store.ensure_schema()
        assert store.current_revision() == PROBE


def test_ensure_schema_refuses_an_unknown_revision(store: Store) -> None:
    """A database migrated by a newer dripper is refused, not 'upgraded'."""
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="at 9999, which this version of dripper does not know"):
        store.ensure_schema()


def test_ensure_schema_refuses_a_foreign_database(db_url: str) -> None:
    """Tables without a dripper version: no silent migration, but `upgrade` adds dripper's
    tables when asked to."""
    store = open_store(db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
        with pytest.raises(
            StoreError, match="tables but none of dripper's: check the database URL"
        ):
            store.ensure_schema()
        assert table_names(store) == {"someone_elses"}
        store.upgrade()
        assert table_names(store) == TABLES | {"alembic_version", "someone_elses"}
        store.ensure_schema()
    finally:
        store.close()
