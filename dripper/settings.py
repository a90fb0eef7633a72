"""What config.toml may say, section by section: each key's check (the `_str`, `_int_range`,
... checkers: a value in, the checked value out, ValueError with what is wrong) and its
default, declared once as the fields of a frozen dataclass (`TransportSettings`, ...). The
loader (dripper/config.py) reads the file against them; the code reads the typed sections.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from dripper.customers.addresses import is_valid_timezone
from dripper.timeparse import parse_duration, parse_time_of_day

Checker = Callable[[Any], Any]


@dataclass(frozen=True)
class FrequencyCap:
    """`max_per_customer = "1/2d"`: at most `count` emails in any `period`."""

    count: int
    period: timedelta


# --- the checkers --------------------------------------------------------------------------


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_show(value)}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_show(value)}")
    return value


def _int_range(low: int, high: int) -> Checker:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {_show(value)}")
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}, got {value}")
        return value

    return check


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {_show(value)}")
    if value < 0:
        raise ValueError(f"expected a number >= 0, got {value}")
    return float(value)


def _choice(*choices: str) -> Checker:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {_show(value)}")
        return str(value)

    return check


def _env_name(value: Any) -> str:
    text = _str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError(
            f"expected the NAME of an environment variable, got {_show(value)}; "
            "put the secret itself in the environment, never in this file"
        )
    return text


def _timezone(value: Any) -> str:
    text = _str(value)
    if not is_valid_timezone(text):
        raise ValueError(f"unknown time zone {text!r} (use an IANA name like 'Europe/Berlin')")
    return text


def _quiet_hours(value: Any) -> tuple[time, time] | None:
    if value in ([], "", None):
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f'expected two times like ["21:00", "08:00"], got {_show(value)}')
    start, end = (parse_time_of_day(v) for v in value)
    if start == end:
        raise ValueError("start and end of quiet hours are the same time")
    return (start, end)


def _cap(value: Any) -> FrequencyCap | None:
    text = _str(value).strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*/\s*(\S+)", text)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f'expected "COUNT/DURATION" like "1/2d", got {_show(value)}')
    period = parse_duration(m.group(2))
    if period <= timedelta(0):
        raise ValueError("the period of max_per_customer must be longer than 0")
    return FrequencyCap(int(m.group(1)), period)


def _durations(value: Any) -> tuple[timedelta, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(
            f'expected a list of durations like ["5m", "30m", "2h"], got {_show(value)}'
        )
    delays = tuple(parse_duration(v) for v in value)
    if any(d <= timedelta(0) for d in delays):
        raise ValueError("retry delays must be longer than 0")
    return delays


def _positive_duration(value: Any) -> timedelta:
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError(f"expected a duration longer than 0, got {_show(value)}")
    return delta


def _url(value: Any) -> str:
    text = _str(value)
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(f"expected an http(s) URL, got {_show(value)}")
    return text.rstrip("/")


def _return_path(value: Any) -> str:
    """The VERP base address: `bounces@bounce.example.com` (no `+`: dripper adds it)."""
    text = _str(value).strip()
    if not text:
        return ""
    if not re.fullmatch(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text):
        raise ValueError(
            f"expected an address like bounces@bounce.example.com (no name, no '+'), got {text!r}"
        )
    return text.lower()


def _optional_env_name(value: Any) -> str:
    return "" if value == "" else _env_name(value)


def _optional_url(value: Any) -> str:
    return "" if value == "" else _url(value)


def _show(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "a table"}
    kind = kinds.get(type(value))
    return f"{kind} ({value!r})" if kind else repr(value)


def _key(check: Checker, default: Any) -> Any:
    """A key of a section: how its value is checked, and its default (the one place)."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class TransportSettings:
    """`[transport]`: how emails leave (files in a folder, or SMTP)."""

    kind: str = _key(_choice("file", "smtp"), "file")
    path: Path = _key(_str, "outbox")  # noqa: RUF009 (a field, not a call: resolved against the config's folder)
    host: str = _key(_str, "localhost")
    port: int = _key(_int_range(1, 65535), 587)
    security: str = _key(_choice("starttls", "tls", "none"), "starttls")
    username: str = _key(_str, "")
    password_env: str = _key(_env_name, "DRIPPER_SMTP_PASSWORD")
    concurrency: int = _key(_int_range(1, 256), 4)
    rate_per_second: float = _key(_number, 0.0)
    timeout: int = _key(_int_range(1, 3600), 60)
    data_timeout: int = _key(_int_range(1, 86400), 600)
    ca_file: Path | None = _key(_str, "")  # noqa: RUF009 (a field; resolved; None when not set)
    pause_after_policy: int = _key(_int_range(1, 10_000), 5)


@dataclass(frozen=True)
class TrackingSettings:
    """`[tracking]`: where links land and what is tracked."""

    base_url: str = _key(_url, "http://127.0.0.1:8080")
    secret_env: str = _key(_env_name, "DRIPPER_SECRET")
    opens: bool = _key(_bool, True)
    clicks: bool = _key(_bool, True)
    apple_relay_ranges: str = _key(_str, "")  # resolved; "" when not set


@dataclass(frozen=True)
class DkimSettings:
    """`[dkim]`: the signing domain, selector and key (unset: unsigned)."""

    domain: str = _key(_str, "")
    selector: str = _key(_str, "")
    private_key: Path | None = _key(_str, "")  # noqa: RUF009 (a field; resolved; None when not set)


@dataclass(frozen=True)
class RepliesSettings:
    """`[replies]`: the IMAP mailbox read for replies and bounces."""

    imap_host: str = _key(_str, "")
    imap_port: int = _key(_int_range(1, 65535), 993)
    security: str = _key(_choice("tls", "starttls", "none"), "tls")
    username: str = _key(_str, "")
    password_env: str = _key(_env_name, "DRIPPER_IMAP_PASSWORD")
    folder: str = _key(_str, "INBOX")
    processed_folder: str = _key(_str, "")
    notify: str = _key(_str, "")


@dataclass(frozen=True)
class BouncesSettings:
    """`[bounces]`: the VERP return path and the soft-bounce limit."""

    return_path: str = _key(_return_path, "")
    soft_limit: int = _key(_int_range(1, 100), 3)


@dataclass(frozen=True)
class ApiSettings:
    """`[api]`: the events API's token and the shops' webhook secrets."""

    token_env: str = _key(_env_name, "DRIPPER_API_TOKEN")
    # Named by default: a shop's webhook route answers once its secret is set.
    shopify_secret_env: str = _key(_optional_env_name, "DRIPPER_SHOPIFY_SECRET")
    woocommerce_secret_env: str = _key(_optional_env_name, "DRIPPER_WOOCOMMERCE_SECRET")


@dataclass(frozen=True)
class ReferralsSettings:
    """`[referrals]`: where a referral link lands."""

    landing_url: str = _key(_optional_url, "")


@dataclass(frozen=True)
class ServeSettings:
    """`[serve]`: `dripper serve` reached directly, no proxy in front (issue 23)."""

    max_connections: int = _key(_int_range(1, 1_000_000), 1000)
    request_timeout: int = _key(_int_range(1, 3600), 20)
    keepalive_timeout: int = _key(_int_range(1, 3600), 5)


@dataclass(frozen=True)
class SignupForm:
    """`[signup.forms.<id>]`: what the person agrees to, and the topics offered."""

    consent_text: str
    topics: tuple[str, ...] | None = None  # None: every configured topic


DEFAULT_CONSENT = (
    "I would like to receive the newsletter by email. I can unsubscribe at any time with "
    "the link in every email."
)
FORM_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TOPIC_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def _field_name(value: Any) -> str:
    text = _str(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,39}", text):
        raise ValueError(f"expected a form field name like 'website', got {_show(value)}")
    return text


def _rate(value: Any) -> FrequencyCap:
    """`10/h`, `100/1d`: COUNT per DURATION (a bare unit is one of it)."""
    text = _str(value).strip()
    m = re.fullmatch(r"(\d+)\s*/\s*(\d*)([a-z]+)", text)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f'expected "COUNT/DURATION" like "10/h", got {_show(value)}')
    period = parse_duration(f"{m.group(2) or 1}{m.group(3)}")
    if period <= timedelta(0):
        raise ValueError("the period must be longer than 0")
    return FrequencyCap(int(m.group(1)), period)


def _forms(value: Any) -> tuple[tuple[str, SignupForm], ...]:
    if not isinstance(value, dict):
        raise ValueError(f"expected tables like [signup.forms.default], got {_show(value)}")
    forms: dict[str, SignupForm] = {}
    for form_id, spec in value.items():
        if not FORM_ID.fullmatch(form_id):
            raise ValueError(f"form id {form_id!r}: use lower-case letters, digits, - and _")
        if not isinstance(spec, dict):
            raise ValueError(f"[signup.forms.{form_id}] must be a table")
        unknown = sorted(set(spec) - {"consent_text", "topics"})
        if unknown:
            raise ValueError(
                f"[signup.forms.{form_id}] unknown key {unknown[0]!r} (known: consent_text, topics)"
            )
        text = _str(spec.get("consent_text", DEFAULT_CONSENT)).strip()
        if not text:
            raise ValueError(
                f"[signup.forms.{form_id}] consent_text is empty: say what they agree to"
            )
        topics = spec.get("topics")
        if topics is not None:
            if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
                raise ValueError(f"[signup.forms.{form_id}] topics: expected a list of topic names")
            topics = tuple(topics)
        forms[form_id] = SignupForm(text, topics)
    forms.setdefault("default", SignupForm(DEFAULT_CONSENT))
    return tuple(forms.items())


@dataclass(frozen=True)
class SignupSettings:
    """`[signup]` (DESIGN 13): the signup form of `serve`, off until `enabled = true`."""

    enabled: bool = _key(_bool, False)
    confirm_within: timedelta = _key(_positive_duration, timedelta(days=7))  # noqa: RUF009 (a field)
    redirect_url: str = _key(_optional_url, "")
    honeypot: str = _key(_field_name, "website")
    per_ip: FrequencyCap = _key(_rate, FrequencyCap(10, timedelta(hours=1)))  # noqa: RUF009
    max_per_day: int = _key(_int_range(0, 100_000_000), 1000)
    proof_of_work: bool = _key(_bool, False)
    # (id, form) pairs: a frozen section holds no dict; `form(id)` looks one up
    forms: tuple[tuple[str, SignupForm], ...] = _key(
        _forms, (("default", SignupForm(DEFAULT_CONSENT)),)
    )

    def form(self, form_id: str) -> SignupForm | None:
        return dict(self.forms).get(form_id)


@dataclass(frozen=True)
class ConsentSettings:
    """`[consent]`: the marketing of customers created without a statement."""

    default: str = _key(_choice("subscribed", "not_subscribed"), "subscribed")


# The typed sections: their keys, checks and defaults are the dataclasses' fields.
SECTIONS: dict[str, type] = {
    "transport": TransportSettings,
    "tracking": TrackingSettings,
    "dkim": DkimSettings,
    "replies": RepliesSettings,
    "bounces": BouncesSettings,
    "api": ApiSettings,
    "referrals": ReferralsSettings,
    "serve": ServeSettings,
    "signup": SignupSettings,
    "consent": ConsentSettings,
}


def _schema_of(cls: type) -> dict[str, tuple[Checker, Any]]:
    return {f.name: (f.metadata["check"], f.default) for f in fields(cls)}


# section -> key -> (checker, default): the typed sections' own, and the keys that become
# fields of Config itself.
SCHEMA: dict[str, dict[str, tuple[Checker, Any]]] = {
    "project": {
        "campaigns": (_str, "campaigns"),
        "templates": (_str, "templates"),
        "samples": (_str, "customers.csv"),
        "cadence": (_positive_duration, timedelta(weeks=6)),
        "max_per_week": (_int_range(1, 1000), 3),
    },
    "database": {"url": (_str, "sqlite:///dripper.db")},
    "sender": {
        "from": (_str, ""),
        "reply_to": (_str, ""),
        "postal_address": (_str, ""),
        "unsubscribe_mailto": (_str, ""),
    },
    **{name: _schema_of(cls) for name, cls in SECTIONS.items()},
    "sending": {
        "timezone": (_timezone, "UTC"),
        "quiet_hours": (_quiet_hours, None),
        "max_per_customer": (_cap, None),
        "retry": (
            _durations,
            (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)),
        ),
        "give_up_after": (_positive_duration, timedelta(days=3)),
        "lease": (_positive_duration, timedelta(minutes=15)),
        "tick_seconds": (_int_range(1, 3600), 30),
        "batch_size": (_int_range(1, 10_000), 500),
        "chunk": (_int_range(1, 64), 4),
        "metrics": (_str, ""),
    },
}
