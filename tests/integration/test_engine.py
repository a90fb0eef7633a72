"""Opening a database: URLs, connection settings and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dripper.errors import StoreError
from dripper.store import open_store


def test_sqlite_connections_get_the_pragmas(tmp_path: Path) -> None:
    """Every SQLite connection runs in WAL with a busy timeout, foreign keys and NORMAL sync."""
    store = open_store(f"sqlite:///{tmp_path / 'd.db'}")
    try:
        assert store.dialect == "sqlite"
        with store.engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA busy_timeout").scalar() == 10000
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        store.close()


def test_sqlite_write_transactions_take_the_lock_at_begin(tmp_path: Path) -> None:
    """A store write transaction holds the write lock from BEGIN, so a second writer waits
    (here: gives up after its busy timeout) instead of failing half-way through."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store = open_store(url)
    store.ensure_schema()
    other = sa.create_engine(url, connect_args={"timeout": 0.1})
    try:
        with store.transaction(), other.connect() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout=100")
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        other.dispose()
        store.close()


@pytest.mark.postgres
def test_plain_postgresql_url_uses_psycopg(pg_admin: sa.Engine) -> None:
    """`postgresql://` (and `postgres://`) URLs are taken to mean psycopg 3."""
    url = pg_admin.url.render_as_string(hide_password=False)
    for scheme in ("postgresql://", "postgres://"):
        store = open_store(url.replace("postgresql+psycopg://", scheme))
        try:
            assert store.dialect == "postgresql"
            assert store.engine.url.drivername == "postgresql+psycopg"
        finally:
            store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://ann:s3cret@db.example/shop", "dripper works with sqlite:///PATH or postgresql"),
        ("postgresql+asyncpg://ann:s3cret@db.example/shop", "dripper works with"),
        ("not a url at all", "bad database URL"),
        ("ann:s3cret@ not a url", "bad database URL (unparsable URL)"),
    ],
)
def test_unusable_urls_are_one_line_errors(url: str, message: str) -> None:
    """A URL dripper cannot use is a StoreError on one line that never shows the password."""
    with pytest.raises(StoreError) as caught:
        open_store(url)
    text = str(caught.value)
    assert message in text
    assert "s3cret" not in text
    assert "\n" not in text


def test_unreachable_postgresql_is_one_line_without_the_password() -> None:
    """A server that is not there: a StoreError naming the database, password hidden."""
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://ann:s3cret@127.0.0.1:9/shop?connect_timeout=2")
    text = str(caught.value)
    assert text.startswith("cannot open database postgresql+psycopg://ann:***@127.0.0.1:9/shop")
    assert "s3cret" not in text
    assert "\n" not in text


def test_unopenable_sqlite_files_are_one_line_errors(tmp_path: Path) -> None:
    """A missing folder or a file that is not a database: a StoreError, not a traceback."""
    with pytest.raises(StoreError, match=r"cannot open database sqlite:///.*unable to open"):
        open_store(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database, just some text " * 100)
    with pytest.raises(StoreError, match="not a database"):
        open_store(f"sqlite:///{junk}")
