"""What an event may carry, checked where events come in (`dripper event --data`, the
Python API, later the HTTP events API), before anything is written.

Pure: values in, a cleaned dict or an InputError of one line out. The database must never
be the one to refuse a value (PostgreSQL answers a NUL byte with a DataError quoting SQL
and customer rows), and a value that reaches an email's headers must be one line.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dripper.customers.model import CustomerData
from dripper.errors import InputError
from dripper.timeparse import EARLIEST_YEAR, LATEST_YEAR


@dataclass(frozen=True)
class NewEvent:
    """An event to record (the Python API's `Planner.record_events`, `events import`);
    also importable as `dripper.store.ingest.NewEvent`."""

    email: str  # normalised (lower-case) address
    type: str
    at: datetime
    data: Mapping[str, Any]
    id: str | None = None  # the sender's id: (type, id) is recorded once (DESIGN 12)
    customer: CustomerData | None = None  # fields the event brings (applied before planning)


MAX_DATA_BYTES = 64 * 1024  # an order's worth of fields, not a document store
MAX_DEPTH = 16


def parse_event_data(text: str | None, *, where: str = "--data") -> dict[str, Any]:
    """`--data` JSON: an object, or {} for nothing."""
    if not text:
        return {}
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DATA_BYTES:
        raise InputError(f"{where}: larger than {MAX_DATA_BYTES // 1024} KiB: keep events small")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"{where}: nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object, like '{{\"amount\": 24.5}}'")
    check_event_data(data, where=where)
    return data


def _no_constant(name: str) -> Any:
    raise InputError(f"--data: {name} is not a number JSON allows: give a real number")


def check_event_data(data: Mapping[str, Any], *, where: str = "--data") -> None:
    """Refuse what no database or email can hold: NUL bytes and lone surrogates anywhere,
    numbers that are not finite, keys that are not text, nesting deeper than MAX_DEPTH."""
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InputError(f"{where}: key {key!r} is not text")
                _check_text(key, f"{path}{key}", where, what="key")
                pending.append((item, f"{path}{key}.", depth + 1))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                pending.append((item, f"{path.rstrip('.')}[{index}].", depth + 1))
        elif isinstance(value, str):
            _check_text(value, path.rstrip("."), where, what="value")
        elif isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{where}: {path.rstrip('.')} is {value}: give a real number")
        elif value is not None and not isinstance(value, bool | int | float):
            raise InputError(f"{where}: {path.rstrip('.')} is not a JSON value")


def _check_text(text: str, path: str, where: str, *, what: str) -> None:
    if "\0" in text:
        raise InputError(f"{where}: the {what} of {path!r} holds a NUL byte: remove it")
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        shown = path.encode("utf-8", "backslashreplace").decode()
        raise InputError(
            f"{where}: the {what} of {shown!r} holds a lone surrogate (not text): remove it"
        )


def check_at(at: datetime, *, where: str = "--at") -> None:
    """An event's time must be one that planning can add 100 years to."""
    if not EARLIEST_YEAR <= at.year <= LATEST_YEAR:
        raise InputError(
            f"{where}: {at.isoformat()} is out of range "
            f"(use a time between {EARLIEST_YEAR} and {LATEST_YEAR})"
        )


def is_one_line(text: str) -> bool:
    """No line break or other control character: what a header value may hold."""
    return not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def check_header_fields(
    data: Mapping[str, Any], fields: Collection[str] | None, *, where: str = "--data"
) -> None:
    """The event fields that email subjects read (`fields`; None: all of them) must be one
    line each: a line break in a subject would fail every send of that email."""
    for key, value in data.items():
        if fields is not None and key not in fields:
            continue
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, str) and not is_one_line(item):
                raise InputError(
                    f"{where}: {key!r} holds a line break or control character, and an email "
                    "subject shows it (a header is one line): remove it"
                )
            if isinstance(item, Mapping):
                pending += item.values()
            elif isinstance(item, list | tuple):
                pending += item


MAX_ID = 200  # characters of an event id: an order number with a prefix, not a document


def check_event_id(value: object, *, where: str = "--id") -> str:
    """An event's id (DESIGN 12): 1-200 printable characters (no line break, no control
    character, no NUL), used as given."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{where}: expected an id of 1 to {MAX_ID} printable characters")
    if len(value) > MAX_ID:
        raise InputError(
            f"{where}: {len(value):,} characters: an id is at most {MAX_ID} "
            "(an order number, like shopify:order:450789469)"
        )
    # An ASCII id (nearly all) holds no surrogate: the character scan is for the rest.
    if not value.isprintable() or (
        not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value)
    ):
        raise InputError(
            f"{where}: {value[:40]!r} holds a line break or control character: an id is "
            "printable characters only"
        )
    return value
