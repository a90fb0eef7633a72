"""A shop that has sent real emails (thank-yous, second-sale offers with one-click answers,
a referral request), on each database, and a real `dripper serve` for its links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serve import ServeProcess, Shop, make_shop

T0 = "2027-01-04T15:00:00Z"
DAY15 = "2027-01-19T18:00:00Z"  # after the second-sale offers (day 14, 10:00 local)
DAY16 = "2027-01-20T12:00:00Z"
DAY20 = "2027-01-24T18:00:00Z"  # after Ada's referral request (3 days after her 2nd order)


@pytest.fixture
def shop(tmp_path: Path, db_url: str) -> Shop:
    """Customers imported; Ada, Grace and Linus bought on day 0; every email up to day 20
    written to outbox/ (Ada bought again on day 16, so she was asked for a referral)."""
    shop = make_shop(tmp_path / "shop", db_url)
    shop.ok("--now", T0, "customers", "import", str(shop.root / "customers.csv"))
    for address in ("ada@example.com", "grace@example.com", "linus@example.com"):
        shop.ok("--now", T0, "event", "purchase", address, "--data", '{"amount": 24.5}')
    shop.ok("--now", T0, "run", "--once")
    shop.ok("--now", DAY15, "run", "--once")
    shop.ok("--now", DAY16, "event", "purchase", "ada@example.com", "--data", '{"amount": 30}')
    shop.ok("--now", DAY20, "run", "--once")
    return shop


@pytest.fixture
def server(shop: Shop) -> Iterator[ServeProcess]:
    with ServeProcess(shop, now=DAY20) as running:
        yield running
