"""The customer fields an event may bring (DESIGN 12): `"customer": {"first_name", ...}` in
the events API, the shop webhooks' names, locale and marketing consent, and
`NewEvent(customer=...)` in the Python API.

Pure: a JSON object in, a CustomerData (or an InputError naming the field) out, with the
same checks as a CSV row. Empty values are "not given": they never overwrite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dripper.customers.csvio import MAX_FIELD, locale_problem, name_problem, timezone_problem
from dripper.customers.model import BUILTIN_NAMES, CustomerData, Status
from dripper.errors import InputError

KEYS = ("first_name", "last_name", "locale", "timezone", "tags", "attributes", "marketing")
MARKETING = {s.value: s for s in Status}
MAX_TAGS = 100


def customer_fields(
    email: str, given: Any, *, where: str = "customer", hints: bool = False
) -> CustomerData:
    """`given` (a JSON object) checked and turned into what it says of the customer. With
    `hints` (a shop adapter's object) it may also hold `timezone_hint`."""
    if given is None:
        return CustomerData(email=email)
    if not isinstance(given, Mapping):
        raise InputError(f"{where}: expected an object like {{\"first_name\": \"Ada\"}}")
    known = (*KEYS, "timezone_hint") if hints else KEYS
    unknown = sorted(str(k) for k in given if k not in known)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    names = {key: _text(given.get(key), f"{where}.{key}") for key in ("first_name", "last_name")}
    for key, value in names.items():
        if problem := name_problem(key, value):
            raise InputError(f"{where}.{key}: {problem}")
    timezone = _text(given.get("timezone"), f"{where}.timezone")
    if timezone and (problem := timezone_problem(timezone)):
        raise InputError(f"{where}.timezone: {problem}")
    hint = _text(given.get("timezone_hint"), f"{where}.timezone_hint")
    if hint and timezone_problem(hint):
        hint = None  # a guess that does not hold is no guess
    locale = _text(given.get("locale"), f"{where}.locale")
    if locale and (problem := locale_problem(locale)):
        raise InputError(f"{where}.locale: {problem}")
    marketing = _text(given.get("marketing"), f"{where}.marketing")
    if marketing and marketing not in MARKETING:
        raise InputError(
            f"{where}.marketing: {marketing!r} is not one of {', '.join(MARKETING)}"
        )
    return CustomerData(
        email=email,
        first_name=names["first_name"],
        last_name=names["last_name"],
        timezone=timezone,
        locale=locale,
        tags=_tags(given.get("tags"), f"{where}.tags"),
        attributes=_attributes(given.get("attributes"), f"{where}.attributes"),
        marketing=MARKETING[marketing] if marketing else None,
        timezone_hint=hint,
    )


def _text(value: Any, where: str) -> str | None:
    """A string field: None or "" is not given; anything but text is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: expected text")
    text = value.strip()
    if len(text) > MAX_FIELD:
        raise InputError(f"{where}: longer than {MAX_FIELD:,} characters")
    if "\0" in text:
        raise InputError(f"{where}: holds a NUL byte: remove it")
    return text or None


def _tags(value: Any, where: str) -> tuple[str, ...] | None:
    """Tags to add (never to replace: an event knows some of a customer's tags, not all)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InputError(f"{where}: expected a list like [\"wholesale\"]")
    if len(value) > MAX_TAGS:
        raise InputError(f"{where}: more than {MAX_TAGS} tags")
    tags: list[str] = []
    for index, item in enumerate(value):
        tag = _text(item, f"{where}[{index}]")
        if tag is None:
            continue
        if ";" in tag or name_problem("tag", tag):
            raise InputError(
                f"{where}[{index}]: {tag[:40]!r}: a tag is one line without ';' (it separates "
                "tags in the CSV files)"
            )
        tags.append(tag)
    return tuple(dict.fromkeys(tags)) or None


def _attributes(value: Any, where: str) -> dict[str, str]:
    """Attributes as the customer sheet keeps them: text (numbers and booleans written
    as text, like a CSV cell); an empty value is not given."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: expected an object like {{\"city\": \"Lisbon\"}}")
    found: dict[str, str] = {}
    for key, item in value.items():
        name = str(key).strip()
        if not name or name.lower() in BUILTIN_NAMES:
            raise InputError(
                f"{where}: {name!r} is not an attribute name (a field dripper keeps or "
                "computes itself: give fields as their own keys)"
            )
        if isinstance(item, bool):
            text: str | None = "true" if item else "false"
        elif isinstance(item, int | float):
            text = str(item)
        else:
            text = _text(item, f"{where}.{name}")
        if text:
            found[name] = text
    return found


def merged_status(old: str, given: Status | None, *, blocked: bool = False) -> str:
    """A customer's marketing after a source (a shop, an import, an event) said `given`.
    Only the person undoes their own word (DESIGN 13): an unsubscribed or suppressed
    (`blocked`) customer stays unsubscribed whatever a shop flag or a file says; the
    person's own confirmed signup is the one way back, and it does not come here."""
    if blocked or old == Status.UNSUBSCRIBED.value or given is Status.UNSUBSCRIBED:
        return Status.UNSUBSCRIBED.value
    return old if given is None else given.value


def merge_fields(old: Mapping[str, Any], given: CustomerData) -> dict[str, Any]:
    """The columns that change when `given` is merged into the stored row `old`: given
    values win, empty ones never overwrite, tags are added (never replaced), attributes
    merged one by one."""
    changes: dict[str, Any] = {}
    for name in ("first_name", "last_name", "timezone", "locale"):
        value = getattr(given, name)
        if value and value != old[name]:
            changes[name] = value
    if given.timezone_hint and not given.timezone and not old["timezone"]:
        changes["timezone"] = given.timezone_hint  # a guess fills a gap, never overwrites
    if given.tags:
        tags = list(dict.fromkeys([*old["tags"], *given.tags]))
        if tags != list(old["tags"]):
            changes["tags"] = tags
    if given.attributes:
        attributes = {**old["attributes"], **{k: v for k, v in given.attributes.items() if v}}
        if attributes != dict(old["attributes"]):
            changes["attributes"] = attributes
    status = merged_status(old["status"], given.marketing)
    if status != old["status"]:
        changes["status"] = status
    return changes
