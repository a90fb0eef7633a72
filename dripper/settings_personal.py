"""`[tasks]` and `[webhooks]` (DESIGN 16): who does the tasks and when their digest comes,
and where a webhook step may POST. Kept beside `dripper.settings` (whose checkers it uses)
so that each module holds one idea; `dripper.config` reads both.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import time
from typing import Any

from email_validator import EmailNotValidError, validate_email

from dripper.i18n import LANGUAGES
from dripper.settings import _env_name, _int_range, _key, _show, _str
from dripper.timeparse import parse_time_of_day

PERSON = re.compile(r"[a-z][a-z0-9_-]{0,39}")  # a key of `people`: a step's `assignee`
PERSON_KEYS = ("email", "language", "name")


@dataclass(frozen=True)
class Person:
    """One of `[tasks] people`: who gets tasks, and the digest of them in which language."""

    key: str
    email: str
    language: str | None = None  # None: `[company] language`
    name: str = ""


def _address(value: Any, where: str) -> str:
    text = _str(value).strip()
    try:
        # A colleague's address may be on an internal or test domain: syntax only.
        info = validate_email(text, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"{where}: invalid email address {text!r}: {exc}") from None
    return str(info.normalized).lower()


def _people(value: Any) -> tuple[Person, ...]:
    """`people = {owner = "ana@acme.test", roaster = {email = "...", language = "de"}}`."""
    if not isinstance(value, dict):
        raise ValueError(f'expected a table like {{owner = "ana@acme.test"}}, got {_show(value)}')
    found = []
    for key, spec in value.items():
        if not PERSON.fullmatch(key):
            raise ValueError(f"person {key!r}: use lower-case letters, digits, - and _")
        if isinstance(spec, str):
            found.append(Person(key, _address(spec, key)))
            continue
        if not isinstance(spec, dict):
            raise ValueError(
                f"{key}: expected an address or a table {{email = ..., language = ...}}"
            )
        unknown = sorted(set(spec) - set(PERSON_KEYS))
        if unknown:
            raise ValueError(f"{key}: unknown key {unknown[0]!r} (known: {', '.join(PERSON_KEYS)})")
        if "email" not in spec:
            raise ValueError(f"{key}: missing email")
        language = spec.get("language")
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"{key}: language: expected one of {', '.join(LANGUAGES)}")
        found.append(
            Person(key, _address(spec["email"], key), language, _str(spec.get("name", "")))
        )
    return tuple(found)


def _digest_at(value: Any) -> time | None:
    """ "08:00", or "" for no digest."""
    if value == "":
        return None
    return parse_time_of_day(value)


def _hosts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of host names or addresses, got {_show(value)}")
    hosts = []
    for item in value:
        host = item.strip().lower().rstrip(".")
        if not host or "/" in host or (":" in host and not _is_address(host)):
            raise ValueError(
                f"{item!r}: a host name or an address (any port), like postcards.example.com"
            )
        hosts.append(host.strip("[]"))
    return tuple(hosts)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TasksSettings:
    """`[tasks]`: the people tasks are for (the first is the default assignee), and when
    each morning the daemon emails each of them their open tasks."""

    people: tuple[Person, ...] = _key(_people, ())
    digest_at: time | None = _key(_digest_at, time(8, 0))  # noqa: RUF009 (a field)

    def person(self, key: str | None) -> Person | None:
        """The person with this key; None: the first (or None when there is nobody)."""
        if key is None:
            return self.people[0] if self.people else None
        return next((p for p in self.people if p.key == key), None)


@dataclass(frozen=True)
class WebhooksSettings:
    """`[webhooks]`: the secret a webhook step signs with, and the only hosts it may reach."""

    secret_env: str = _key(_env_name, "DRIPPER_WEBHOOK_SECRET")
    allowed_hosts: tuple[str, ...] = _key(_hosts, ())
    timeout: int = _key(_int_range(1, 300), 10)  # seconds for the whole request
    max_answer: int = _key(_int_range(1, 10_000_000), 65536)  # bytes of the answer read


PERSONAL_SECTIONS: dict[str, type] = {"tasks": TasksSettings, "webhooks": WebhooksSettings}
