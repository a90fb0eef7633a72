"""A shop that has sent real emails (thank-yous, second-sale offers with one-click answers,
a referral request), on each database, and a real `dripper serve` for its links.

Two of each. `shop` and `server` are a test's own: for a test that needs the shop exactly
as it was sent (it counts every row of a table, forgets or unsubscribes a customer others
use, runs the daemon, stops or restarts serve, changes the config). `module_shop` and
`module_server` are built once per module and database (in each xdist worker that runs
the module: nothing is shared between processes), for the tests that only read what the
shop sent, or write only about a customer or an email no other test of the module uses,
and count what they wrote relative to what was there before (`settle` first: serve
writes hits in batches, and the previous test's may still be on their way)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATABASES, empty_database
from tests.support.serve import ServeProcess, Shop, make_shop

T0 = "2027-01-04T15:00:00Z"
DAY15 = "2027-01-19T18:00:00Z"  # after the second-sale offers (day 14, 10:00 local)
DAY16 = "2027-01-20T12:00:00Z"
DAY20 = "2027-01-24T18:00:00Z"  # after Ada's referral request (3 days after her 2nd order)


def sent_shop(root: Path, db_url: str) -> Shop:
    """Customers imported; Ada, Grace and Linus bought on day 0; every email up to day 20
    written to outbox/ (Ada bought again on day 16, so she was asked for a referral)."""
    shop = make_shop(root, db_url)
    shop.ok("--now", T0, "customers", "import", str(shop.root / "customers.csv"))
    for address in ("ada@example.com", "grace@example.com", "linus@example.com"):
        shop.ok("--now", T0, "event", "purchase", address, "--data", '{"amount": 24.5}')
    shop.ok("--now", T0, "run", "--once")
    shop.ok("--now", DAY15, "run", "--once")
    shop.ok("--now", DAY16, "event", "purchase", "ada@example.com", "--data", '{"amount": 30}')
    shop.ok("--now", DAY20, "run", "--once")
    return shop


@pytest.fixture
def shop(tmp_path: Path, db_url: str) -> Shop:
    """The sent shop, this test's own."""
    return sent_shop(tmp_path / "shop", db_url)


@pytest.fixture
def server(shop: Shop) -> Iterator[ServeProcess]:
    """serve for this test's own shop, at day 20."""
    with ServeProcess(shop, now=DAY20) as running:
        yield running


@pytest.fixture(scope="module", params=DATABASES)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`db_url` for a whole module: a SQLite file, or a PostgreSQL schema of its own."""
    with empty_database(request, tmp_path_factory.mktemp("db"), prefix="m") as url:
        yield url


@pytest.fixture(scope="module")
def module_shop(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Shop:
    """The sent shop, shared by the tests of one module on one database."""
    return sent_shop(tmp_path_factory.mktemp("shop") / "shop", module_db_url)


@pytest.fixture(scope="module")
def module_server(module_shop: Shop) -> Iterator[ServeProcess]:
    """serve for the module's shop, at day 20: started once, stopped after the module."""
    with ServeProcess(module_shop, now=DAY20) as running:
        yield running
