"""Database fixtures for every test tier: each test gets an empty database of each kind.

SQLite: a file in the test's tmp_path. PostgreSQL: a fresh schema in the database named by
DRIPPER_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test), reached
through `search_path`, so migrations and Alembic's version table land in it; it is
dropped afterwards. An unreachable PostgreSQL fails its tests; it never skips them, unless
DRIPPER_TEST_PG=skip says so explicitly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

if TYPE_CHECKING:
    from dripper.store import Store

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def pg_admin_url() -> sa.URL:
    return sa.make_url(os.environ.get("DRIPPER_TEST_PG_URL", DEFAULT_PG_URL))


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An engine on the PostgreSQL test database, checked once per session."""
    if os.environ.get("DRIPPER_TEST_PG") == "skip":
        pytest.skip("PostgreSQL tests skipped: DRIPPER_TEST_PG=skip")
    url = pg_admin_url()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    problem = None
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as error:
        engine.dispose()
        problem = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
    if problem is not None:
        pytest.fail(
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is unreachable "
            f"({problem}): start it, point DRIPPER_TEST_PG_URL at one, "
            "or set DRIPPER_TEST_PG=skip to skip these tests on purpose",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    with empty_database(request, tmp_path, prefix="t") as url:
        yield url


@contextmanager
def empty_database(request: pytest.FixtureRequest, folder: Path, *, prefix: str) -> Iterator[str]:
    """`request.param`'s database, empty: a SQLite file in `folder`, or a PostgreSQL schema
    named `prefix` and a random part (another xdist worker may run the same test or
    module at the same time), dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'dripper.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("pg_admin")
    schema = f"{prefix}_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # A transaction a test left open would hold locks: fail loudly, never hang.
            conn.exec_driver_sql("SET lock_timeout = '10s'")
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An open store with its schema at head, on each database."""
    from dripper.store import open_store

    opened = open_store(db_url)
    opened.ensure_schema()
    try:
        yield opened
    finally:
        opened.close()
