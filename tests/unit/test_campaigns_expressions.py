"""Campaign expressions: compiling, the names they may use, and sandboxed evaluation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from dripper.campaigns import Expression, ExpressionError
from dripper.customers.model import Customer, Fields, Status
from dripper.errors import DripperError


def _customer(**attributes: Any) -> Fields:
    customer = Customer(
        id=1,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        timezone="Europe/London",
        locale="en-GB",
        tags=("vip",),
        attributes=attributes,
        status=Status.SUBSCRIBED,
        created_at=datetime(2027, 1, 1, tzinfo=UTC),
        purchases=2,
        total_spent=Decimal("48.50"),
    )
    return customer.as_context()


def _ctx(**attributes: Any) -> dict[str, Any]:
    return {
        "customer": _customer(**attributes),
        "event": None,
        "now": datetime(2027, 3, 1, tzinfo=UTC),
        "campaign": {"name": "welcome"},
        "edition": None,
    }


def _expr(source: str) -> Expression:
    return Expression.compile(source, file="campaigns/welcome.yaml", line=7, key="steps[1].if")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("customer.purchases == 2", True),
        ("customer.purchases < 2", False),
        ("customer.total_spent >= 40", True),
        ("'vip' in customer.tags", True),
        ("'no-newsletter' not in customer.tags", True),
        ("customer.first_name ~ '!'", "Ada!"),
        ("campaign.name == 'welcome' and now.year == 2027", True),
    ],
)
def test_evaluates_in_the_documented_scope(source: str, expected: object) -> None:
    """Expressions see customer (fields, derived values), now and campaign, with Jinja syntax."""
    assert _expr(source).evaluate(_ctx()) == expected


def test_missing_attribute_is_falsy_when_only_tested() -> None:
    """A sheet column a customer lacks is undefined: falsy, unequal, and None as a result."""
    assert _expr("customer.birthday").evaluate(_ctx()) is None
    assert _expr("customer.city == 'Paris'").evaluate(_ctx()) is False
    assert _expr("customer.favorite_coffee or 'house blend'").evaluate(_ctx()) == "house blend"
    assert _expr("customer.birthday is defined").evaluate(_ctx(birthday="1815-12-10")) is True
    assert _expr("customer.birthday").evaluate(_ctx(birthday=date(1815, 12, 10))) == date(
        1815, 12, 10
    )


def test_missing_attribute_used_for_a_value_is_an_error_naming_the_place() -> None:
    """Comparing a missing attribute raises ExpressionError with file:line, key and the source."""
    with pytest.raises(ExpressionError) as caught:
        _expr("customer.nope < 2").evaluate(_ctx())
    message = str(caught.value)
    assert message.startswith("campaigns/welcome.yaml:7: steps[1].if: 'customer.nope < 2' failed")
    assert "'nope'" in message
    assert "is defined" in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert isinstance(caught.value, DripperError)


def test_type_errors_suggest_converting_sheet_text() -> None:
    """Comparing a text attribute with a number explains that sheet values are text."""
    with pytest.raises(ExpressionError, match=r"\|int"):
        _expr("customer.age > 30").evaluate(_ctx(age="42"))
    assert _expr("customer.age | int > 30").evaluate(_ctx(age="42")) is True


@pytest.mark.parametrize(
    "source",
    [
        "customer.__class__.__mro__",
        "customer.__class__",
        "customer.tags.pop.__self__",
        "now.__reduce_ex__(2)",
        "customer.tags.append('vip')",
    ],
)
def test_sandbox_refuses_unsafe_access(source: str) -> None:
    """Dunder attributes and mutating methods are refused by the sandbox with one clear line."""
    with pytest.raises(ExpressionError, match=r"refused by the sandbox|unsafe"):
        _expr(source).evaluate(_ctx())


@pytest.mark.parametrize(
    "source",
    [
        "'x' * 1000000000",
        "[1, 2] * 10**6",
        "10 ** 1000000",
        "((2**128)**128)**128",
        "range(10**9) | list",
    ],
)
def test_sandbox_bounds_work(source: str) -> None:
    """Huge repetitions, powers and ranges are refused instead of eating memory or CPU."""
    with pytest.raises(ExpressionError):
        _expr(source).evaluate(_ctx())
    assert _expr("'ab' * 3 ~ (2 ** 10) | string").evaluate(_ctx()) == "ababab1024"


def test_names_are_recorded_and_limited_to_the_scope() -> None:
    """`names` lists the variables read; any other variable is refused at compile time."""
    assert _expr("customer.purchases > 1 and event.type == 'purchase'").names == frozenset(
        {"customer", "event"}
    )
    assert _expr("range(3) | list | length == 3").names == frozenset()
    with pytest.raises(ExpressionError, match=r"unknown name 'custmer'.*did you mean 'customer'"):
        _expr("custmer.purchases == 1")
    with pytest.raises(ExpressionError, match="unknown name 'lipsum'"):
        _expr("lipsum(1)")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("customer.purchases <", "does not compile: unexpected end of expression"),
        ("customer.purchases | nofilter", "No filter named 'nofilter'"),
        ("1) }}{{ (2", "does not compile"),
        ("{% if true %}", "does not compile"),
        ("   ", "empty expression"),
    ],
)
def test_bad_expressions_do_not_compile(source: str, fragment: str) -> None:
    """Syntax errors, unknown filters, template tags and blank text are refused when loading."""
    with pytest.raises(ExpressionError) as caught:
        _expr(source)
    assert fragment in caught.value.reason
    assert str(caught.value).startswith("campaigns/welcome.yaml:7: steps[1].if: ")


def test_expressions_compare_by_source_and_place() -> None:
    """Two compilations of the same text at the same place are equal values."""
    assert _expr("customer.purchases == 1") == _expr("customer.purchases == 1")
    assert _expr("customer.purchases == 1") != _expr("customer.purchases == 2")
    assert "compiled" not in repr(_expr("customer.purchases == 1"))


def test_evaluation_agrees_with_jinjas_own_call() -> None:
    """`evaluate` skips Jinja's per-call context copy; it must give what Jinja gives."""
    from jinja2 import Undefined

    assert getattr(Expression.compile("1").compiled, "_template", None) is not None, (
        "Jinja changed: Expression._run has fallen back to the slow path"
    )
    cases: list[tuple[str, dict[str, Any]]] = [
        ("customer.purchases == 2", {"customer": {"purchases": 2}}),
        ("customer.nope", {"customer": {}}),
        ("range(3) | list", {}),
        ("range", {"range": "shadowed by the context"}),
        ("dict(a=1)", {}),
        ("event.type ~ '!'", {"event": {"type": "purchase"}}),
        ("now is none", {"now": None}),
    ]
    for source, context in cases:
        expression = Expression.compile(source)
        stock = expression.compiled(dict(context))
        assert expression.evaluate(context) == (None if isinstance(stock, Undefined) else stock)
