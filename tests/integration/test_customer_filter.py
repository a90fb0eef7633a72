"""A `when:` expression compiled to SQL selects exactly the customers for which the
expression is true in Python, on SQLite and PostgreSQL: random expressions from the
compilable subset (comparisons, and/or/not, `in`, attributes present or absent, tags,
none) over random customers. Expressions outside the subset compile to nothing (the scan
then reads every customer)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripper.campaigns.expressions import Expression, ExpressionError
from dripper.customers.model import CustomerData
from dripper.store import Store
from dripper.store.customer_filter import date_filter, when_filter
from dripper.store.customers import get_customer
from dripper.store.schema import customers, suppressions

NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)
WORDS = ["Paris", "London", "", "vip", "x'y", "50%", "é"]

word = st.sampled_from(WORDS).map(repr)
number = st.sampled_from(["0", "1", "2", "3", "80", "99.5", "24.5", "19.99", "1.0", "100"])
comparison = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
numeric_field = st.sampled_from(["purchases", "spend_percentile", "total_spent"])
text_field = st.sampled_from(["first_name", "timezone", "locale", "status", "city", "plan"])
term = st.one_of(
    st.builds(lambda f, op, n: f"customer.{f} {op} {n}", numeric_field, comparison, number),
    st.builds(lambda n, op, f: f"{n} {op} customer.{f}", number, comparison, numeric_field),
    st.builds(
        lambda f, op, w: f"customer.{f} {op} {w}", text_field, st.sampled_from(["==", "!="]), word
    ),
    st.builds(lambda f, op: f"customer.{f} {op} none", text_field, st.sampled_from(["==", "!="])),
    st.builds(
        lambda f, neg, ws: f"customer.{f} {neg}in [{', '.join(ws)}]",
        text_field,
        st.sampled_from(["", "not "]),
        st.lists(word, max_size=3),
    ),
    st.builds(lambda w, neg: f"{w} {neg}in customer.tags", word, st.sampled_from(["", "not "])),
    st.sampled_from(
        [
            "customer.subscribed",
            "customer.city",
            "customer.tags",
            "customer.purchases",
            "customer.spend_rank == 1",
            "customer.spend_rank != none",
            "1 < customer.purchases < 3",
            "true",
            "false",
        ]
    ),
)
expressions = st.recursive(
    term,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=5,
)
people = st.lists(
    st.fixed_dictionaries(
        {
            "first_name": st.sampled_from(["", "Ada", "London"]),
            "timezone": st.sampled_from([None, "Europe/Paris", "UTC"]),
            "locale": st.sampled_from([None, "en", "Paris"]),
            "tags": st.lists(st.sampled_from(WORDS), max_size=2),
            "attributes": st.dictionaries(
                st.sampled_from(["city", "plan"]), st.sampled_from(WORDS)
            ),
            "purchases": st.integers(0, 3),
            "cents": st.sampled_from([0, 1999, 2450, 9950, 10000]),
            "percentile": st.sampled_from([None, 0, 80, 100]),
            "rank": st.sampled_from([None, 1, 2]),
            "status": st.sampled_from(["subscribed", "unsubscribed"]),
        }
    ),
    min_size=1,
    max_size=8,
)


def fill(store: Store, who: list[dict[str, object]]) -> list[int]:
    with store.transaction() as conn:
        conn.execute(customers.delete())
        conn.execute(suppressions.delete())
    data = [
        CustomerData(
            f"c{i}@example.com",
            first_name=str(p["first_name"]) or None,
            timezone=p["timezone"],  # type: ignore[arg-type]
            locale=p["locale"],  # type: ignore[arg-type]
            tags=tuple(cast("list[str]", p["tags"])),
            attributes=p["attributes"],  # type: ignore[arg-type]
        )
        for i, p in enumerate(who)
    ]
    store.upsert_customers(data, now=NOW)
    ids = []
    with store.transaction() as conn:
        for i, p in enumerate(who):
            found = get_customer(conn, f"c{i}@example.com")
            assert found is not None
            ids.append(found.id)
            conn.execute(
                customers.update()
                .where(customers.c.id == found.id)
                .values(
                    purchases=p["purchases"],
                    total_spent_cents=p["cents"],
                    spend_percentile=p["percentile"],
                    spend_rank=p["rank"],
                    status=p["status"],
                )
            )
    return ids


def python_says(store: Store, ids: list[int], source: str) -> set[int]:
    expression = Expression.compile(source)
    found = set()
    with store.reading() as conn:
        for i in range(len(ids)):
            customer = get_customer(conn, f"c{i}@example.com")
            assert customer is not None
            try:
                if expression.evaluate({"customer": customer.as_context()}):
                    found.add(customer.id)
            except ExpressionError:
                pass  # a failing expression is false for that customer
    return found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(who=people, sources=st.lists(expressions, min_size=1, max_size=6))
def test_the_sql_selects_whom_python_selects(
    store: Store, who: list[dict[str, object]], sources: list[str]
) -> None:
    """Every compilable expression: SQL's customers == Python's customers."""
    ids = fill(store, who)
    for source in sources:
        where = when_filter(source, store.dialect)
        assert where is not None, source
        with store.reading() as conn:
            sql = set(conn.execute(sa.select(customers.c.id).where(where)).scalars())
        assert sql == python_says(store, ids, source), source


@pytest.mark.parametrize(
    "source",
    [
        "customer.first_name < 'm'",  # text is not ordered in SQL here
        "customer.created_at < now",
        "customer.purchases + 1 > 2",
        "event.type == 'purchase'",
        "customer.city | length > 2",
        "customer['city'] == 'Paris'",
        "customer.spend_rank < 3",  # none would make Python fail the whole expression
    ],
)
def test_what_is_outside_the_subset_is_not_compiled(store: Store, source: str) -> None:
    """Outside the subset there is no filter: the scan reads every customer."""
    assert when_filter(source, store.dialect) is None


def plain(**values: object) -> dict[str, object]:
    """A customer for `fill` with nothing set but `values`."""
    person: dict[str, object] = {
        "first_name": "",
        "timezone": None,
        "locale": None,
        "tags": [],
        "attributes": {},
        "purchases": 0,
        "cents": 0,
        "percentile": None,
        "rank": None,
        "status": "subscribed",
    }
    return {**person, **values}


def test_a_date_trigger_reads_only_customers_with_the_date(store: Store) -> None:
    """`date: customer.birthday` reads the customers with a birthday set, nobody else."""
    fill(
        store,
        [plain(attributes=attrs) for attrs in ({"birthday": "1990-02-03"}, {"birthday": ""}, {})],
    )
    where = date_filter("customer.birthday", store.dialect)
    assert where is not None
    with store.reading() as conn:
        found = conn.execute(sa.select(customers.c.email).where(where)).scalars().all()
    assert found == ["c0@example.com"]
    assert date_filter("customer.birthday | default('2000-01-01')", store.dialect) is None


def test_a_fractional_bound_is_compared_exactly(store: Store) -> None:
    """`total_spent > 19.99` (a float just under 19.99) holds for 19.99 spent, as Python
    says, and `purchases == 1.5` for nobody."""
    fill(
        store,
        [plain(purchases=1, cents=cents) for cents in (1998, 1999, 2000)],
    )
    for source, expected in (
        ("customer.total_spent > 19.99", ["c1@example.com", "c2@example.com"]),
        ("customer.total_spent <= 19.99", ["c0@example.com"]),
        ("customer.purchases == 1.5", []),
        ("customer.purchases < 1.5", ["c0@example.com", "c1@example.com", "c2@example.com"]),
    ):
        assert Decimal(1999) / 100 > Decimal(float("19.99"))  # so 19.99 spent is more
        where = when_filter(source, store.dialect)
        assert where is not None
        with store.reading() as conn:
            query = sa.select(customers.c.email).where(where).order_by(customers.c.email)
            assert conn.execute(query).scalars().all() == expected, source
