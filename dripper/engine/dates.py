"""Dates read by `date:` triggers, and the check that a sheet's date columns hold dates.

A date trigger reads a field (`customer.first_purchase_at`, a datetime) or a sheet column
(`customer.birthday`, text in `YYYY-MM-DD`). A value that is there but is not a date
(`1990-02-30`, `31/12/1990`) would silently never enroll anyone; these functions say so,
naming the customer and the line, so `check` and `customers import` can report it.

Pure: values in, dates or one-line reasons out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from jinja2 import nodes

SHOWN = 5  # bad values named one by one before the rest is counted


def date_problem(value: Any) -> str | None:
    """Why `value` is not a date a trigger can use, or None (a date, or no value at all)."""
    if value is None or isinstance(value, date):  # datetime is a date too
        return None
    if not isinstance(value, str):
        return f"{value!r} is not a date (use YYYY-MM-DD)"
    text = value.strip()
    if not text:
        return None
    if text[4:5] != "-" or (len(text) > 10 and text[10] not in "T "):
        return f"{text!r} is not a date (use YYYY-MM-DD)"
    try:
        if len(text) == 10:
            date.fromisoformat(text)
        else:
            datetime.fromisoformat(text)
    except ValueError as exc:
        reason = str(exc)
        if "Invalid isoformat" in reason or len(text) != 10:
            return f"{text!r} is not a date (use YYYY-MM-DD)"
        return f"{text!r} is not a date ({reason}; use YYYY-MM-DD)"
    return None


def as_date(value: Any) -> date | None:
    """The day `value` names: a date, a datetime's day, or an ISO `YYYY-MM-DD` string.
    None for no value and for anything that is not a date (`date_problem` says why)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or date_problem(value) is not None:
        return None
    text = value.strip()
    if not text:
        return None
    return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()


def customer_names(expression: str) -> list[str]:
    """The names an expression reads off `customer` (`customer.birthday`,
    `customer["birthday"]`), in order, without repeats."""
    from jinja2.sandbox import SandboxedEnvironment

    try:
        tree = SandboxedEnvironment().parse("{{ (" + expression + ") }}")
    except Exception:  # the loader reports expressions that do not compile
        return []
    found: dict[str, None] = {}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name == "customer"):
            continue
        if isinstance(node, nodes.Getattr):
            found[node.attr] = None
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[node.arg.value] = None
    return list(found)


def unknown_name_problem(expression: str, known: Iterable[str]) -> str | None:
    """A problem when the expression reads a customer name that no customer has (a typo
    such as `customer.brithday`), with a "did you mean"; None when every name is known."""
    names = set(known)
    for name in customer_names(expression):
        if name in names:
            continue
        close = difflib.get_close_matches(name, sorted(names), n=1)
        hint = f"did you mean 'customer.{close[0]}'? " if close else ""
        return (
            f"'{expression}' reads customer.{name}, which no sample customer has "
            f"({hint}a date trigger on a missing column never enrolls anyone)"
        )
    return None


@dataclass(frozen=True)
class BadDate:
    """One customer whose date value a trigger cannot read."""

    email: str
    line: int | None  # in the CSV file, where there is one
    problem: str


def summarize(column: str, bad: Sequence[BadDate], *, users: str) -> str:
    """One line: the first few bad values by address (and line), then how many in all."""
    shown = []
    for item in bad[:SHOWN]:
        where = f" (line {item.line})" if item.line is not None else ""
        shown.append(f"{item.email}{where}: {item.problem}")
    more = f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    return (
        f"{len(bad)} customer(s) have a {column!r} that is not a date, so {users} never "
        f"{'enroll' if users.startswith('campaigns ') else 'enrolls'} them: "
        + "; ".join(shown)
        + more
    )
