"""Campaign expressions over `customer` as SQL, so that a trigger scan reads only the
customers that can match instead of every customer (`when: customer.spend_percentile >= 80
and customer.purchases >= 2` reads the few best customers, not a million rows).

`when_filter` gives a WHERE clause that holds for exactly the customers for which the
expression is true (tests/integration/test_customer_filter.py checks it against the
Python evaluation, on both databases, for random expressions and customers); the planner
still evaluates the expression on what it reads. `date_filter` gives a superset (the
customers whose date field is set). Anything outside the subset below gives None: the
scan then reads every customer, as before.

The subset, chosen so that no term can fail (a failing term makes the whole Python
expression false, which two-valued SQL cannot mimic) and no NULL leaks into a NOT:
- `and`, `or`, `not`, parentheses; comparisons (chains too) between a customer field and
  a constant;
- whole numbers (`purchases`, `spend_percentile`) and `total_spent` (in whole cents)
  against number constants, compared exactly (a float by its binary value):
  `== != < <= > >=`;
- text fields (`email`, names, `status`, `timezone`, `locale`) and sheet attributes
  (`customer.city`): `==`, `!=`, `in [...]` with text constants (or `none`), and bare
  truthiness; never ordering (the databases' collations order text differently);
- `'x' in customer.tags`, `customer.subscribed`, and `customer.spend_rank` against
  whole numbers or `none` for equality only.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from jinja2 import Environment, nodes

from dripper.customers.model import BUILTIN_NAMES
from dripper.store.schema import customers

_PARSER = Environment(autoescape=False)  # noqa: S701 (parses expressions; renders nothing)
_c = customers.c
_ORDER = {"lt": "<", "lteq": "<=", "gt": ">", "gteq": ">="}
_FLIP = {"lt": "gt", "lteq": "gteq", "gt": "lt", "gteq": "lteq", "eq": "eq", "ne": "ne"}
_NUMBERS = {"purchases": _c.purchases, "spend_percentile": sa.func.coalesce(_c.spend_percentile, 0)}
_TEXT = {
    "email": _c.email,
    "first_name": _c.first_name,
    "last_name": _c.last_name,
    "status": _c.status,
    "timezone": _c.timezone,
    "locale": _c.locale,
}
_NULLABLE = frozenset({"timezone", "locale"})


class _NotCompilable(Exception):
    pass


def when_filter(source: str, dialect: str) -> sa.ColumnElement[bool] | None:
    """SQL true exactly when `source` is true for a customer; None outside the subset."""
    try:
        return _Compiler(dialect).condition(_parse(source))
    except _NotCompilable:
        return None


def date_filter(source: str, dialect: str) -> sa.ColumnElement[bool] | None:
    """SQL true for every customer whose `date:` expression can give a date (a bare
    `customer.<column>`: that column set); None for anything else."""
    try:
        node = _parse(source)
        if not _is_field(node):
            return None
        return _Compiler(dialect).truthy(node)
    except _NotCompilable:
        return None


def _parse(source: str) -> nodes.Expr:
    try:
        template = _PARSER.parse("{{ (" + source + ") }}")
    except Exception:  # the campaign loader reports syntax errors; here: not compilable
        raise _NotCompilable from None
    output = template.body[0]
    if not isinstance(output, nodes.Output) or len(output.nodes) != 1:
        raise _NotCompilable
    return output.nodes[0]


def _is_field(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Getattr)
        and isinstance(node.node, nodes.Name)
        and node.node.name == "customer"
        and node.ctx == "load"
    )


def _const(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.List | nodes.Tuple):
        return [_const(item) for item in node.items]
    raise _NotCompilable


class _Compiler:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect

    def condition(self, node: nodes.Node) -> sa.ColumnElement[bool]:
        if isinstance(node, nodes.And):
            return sa.and_(self.condition(node.left), self.condition(node.right))
        if isinstance(node, nodes.Or):
            return sa.or_(self.condition(node.left), self.condition(node.right))
        if isinstance(node, nodes.Not):
            return sa.not_(self.condition(node.node))
        if isinstance(node, nodes.Compare):
            terms = []
            left = node.expr
            for operand in node.ops:
                terms.append(self.compare(left, operand.op, operand.expr))
                left = operand.expr
            return sa.and_(*terms)
        if _is_field(node):
            return self.truthy(node)
        if isinstance(node, nodes.Const) and isinstance(node.value, bool):
            return sa.true() if node.value else sa.false()
        raise _NotCompilable

    def truthy(self, node: nodes.Node) -> sa.ColumnElement[bool]:
        """`customer.<name>` read as a condition: Python's truthiness of its value."""
        assert isinstance(node, nodes.Getattr)
        name = node.attr
        if name == "subscribed":
            return _c.status == "subscribed"
        if name in _NUMBERS:
            return _NUMBERS[name] != 0
        if name == "total_spent":
            return _c.total_spent_cents != 0
        if name == "tags":
            length = (
                sa.func.jsonb_array_length(_c.tags)
                if self.dialect == "postgresql"
                else sa.func.json_array_length(_c.tags)
            )
            return length > 0
        if name in _TEXT or name not in BUILTIN_NAMES:
            value = self.text(name)
            return sa.and_(value.is_not(None), value != "")
        raise _NotCompilable  # dates, spend_rank: no truthiness worth a filter

    def text(self, name: str) -> sa.ColumnElement[Any]:
        if name in _TEXT:
            return _TEXT[name]
        if name in BUILTIN_NAMES:
            raise _NotCompilable
        # A sheet attribute: a string, or absent (jinja's Undefined: unequal to everything).
        if self.dialect == "postgresql":
            return _c.attributes.op("->>")(sa.literal(name))
        return sa.func.json_extract(_c.attributes, sa.literal("$." + _json_key(name)))

    def compare(self, left: nodes.Node, op: str, right: nodes.Node) -> sa.ColumnElement[bool]:
        if op in ("in", "notin"):
            found = self.membership(left, right)
            return sa.not_(found) if op == "notin" else found
        if not _is_field(left):
            if not _is_field(right) or op not in _FLIP:
                raise _NotCompilable
            left, right, op = right, left, _FLIP[op]
        assert isinstance(left, nodes.Getattr)
        value = _const(right)
        name = left.attr
        if name in _NUMBERS or name == "total_spent" or name == "spend_rank":
            return self.number(name, op, value)
        if op not in ("eq", "ne"):
            raise _NotCompilable  # text is never ordered here (see the module)
        column = self.text(name)
        if value is None:
            # A text column that cannot be NULL is never None; an absent sheet attribute
            # is jinja's Undefined, which is unequal even to none.
            if name not in _NULLABLE:
                return sa.false() if op == "eq" else sa.true()
            return column.is_(None) if op == "eq" else column.is_not(None)
        if not isinstance(value, str):
            raise _NotCompilable
        equal = sa.and_(column.is_not(None), column == value)
        return equal if op == "eq" else sa.not_(equal)

    def number(self, name: str, op: str, value: Any) -> sa.ColumnElement[bool]:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            if name == "spend_rank" and value is None and op in ("eq", "ne"):
                return _c.spend_rank.is_(None) if op == "eq" else _c.spend_rank.is_not(None)
            raise _NotCompilable
        if name == "spend_rank":
            if op not in ("eq", "ne") or not isinstance(value, int):
                raise _NotCompilable
            equal = sa.and_(_c.spend_rank.is_not(None), _c.spend_rank == value)
            return equal if op == "eq" else sa.not_(equal)
        column: sa.ColumnElement[Any] = (
            _c.total_spent_cents if name == "total_spent" else _NUMBERS[name]
        )
        # The constant exactly (a float's binary value), in the column's unit; the column
        # holds whole numbers, so a fractional bound becomes the whole number next to it.
        exact = Decimal(value) * (100 if name == "total_spent" else 1)
        if exact == exact.to_integral_value():
            bound = int(exact)
            if op == "eq":
                return column == bound
            if op == "ne":
                return column != bound
            return column.op(_ORDER[op])(bound)
        if op == "eq":
            return sa.false()
        if op == "ne":
            return sa.true()
        if op in ("lt", "lteq"):
            return column <= math.floor(exact)
        return column >= math.ceil(exact)

    def membership(self, left: nodes.Node, right: nodes.Node) -> sa.ColumnElement[bool]:
        if _is_field(right):
            assert isinstance(right, nodes.Getattr)
            value = _const(left)
            if right.attr != "tags" or not isinstance(value, str):
                raise _NotCompilable
            if self.dialect == "postgresql":
                return _c.tags.op("?", return_type=sa.Boolean)(value)
            each = sa.func.json_each(_c.tags).table_valued("value")
            return sa.exists().where(each.c.value == value)
        if not _is_field(left):
            raise _NotCompilable
        assert isinstance(left, nodes.Getattr)
        values = _const(right)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _NotCompilable
        if left.attr in _NUMBERS or left.attr in ("total_spent", "spend_rank", "tags"):
            raise _NotCompilable
        column = self.text(left.attr)
        if not values:
            return sa.false()
        return sa.and_(column.is_not(None), column.in_(values))


def _json_key(name: str) -> str:
    """A key in a SQLite JSON path, quoted (a column name may hold dots or spaces)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
