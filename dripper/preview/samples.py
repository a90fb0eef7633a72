"""Sample customers for previews and `dripper check`: the rows of `[project] samples`
(customers.csv by default), as customers who have just made their first purchase, so that
templates showing purchase fields render as they will for a real buyer."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from dripper.customers.model import Customer, Status
from dripper.errors import InputError


def load_samples(path: Path, *, now: datetime) -> list[Customer]:
    """Every valid row of the sample sheet. A missing file gives one built-in sample; a
    bad row is an InputError naming file:line (a preview must never guess)."""
    from dripper.customers.csvio import read_customers_csv

    if not path.is_file():
        return [_customer(1, "sam@example.com", "Sam", "Sample", None, None, (), {}, now)]
    try:
        sheet = read_customers_csv(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the sample customers ({exc})") from None
    if sheet.problems:
        raise InputError(sheet.problems[0].render(str(path)))
    return [
        _customer(
            index,
            row.email,
            row.first_name or "",
            row.last_name or "",
            row.timezone,
            row.locale,
            row.tags or (),
            dict(row.attributes),
            now,
        )
        for index, row in enumerate(sheet.rows, start=1)
    ]


def find_sample(samples: list[Customer], email: str) -> Customer | None:
    wanted = email.strip().lower()
    return next((c for c in samples if c.email == wanted), None)


def _customer(
    index: int,
    email: str,
    first: str,
    last: str,
    timezone: str | None,
    locale: str | None,
    tags: tuple[str, ...],
    attributes: dict[str, str],
    now: datetime,
) -> Customer:
    return Customer(
        id=index,
        email=email,
        first_name=first,
        last_name=last,
        timezone=timezone,
        locale=locale,
        tags=tuple(tags),
        attributes=attributes,
        status=Status.SUBSCRIBED,
        created_at=now - timedelta(days=30),
        purchases=1,
        total_spent=Decimal("24.50"),
        first_purchase_at=now - timedelta(hours=1),
        last_purchase_at=now - timedelta(hours=1),
    )
