"""config.toml: load, check every key against its declared type, fill in defaults.

Every problem is reported, each as `file:line: [section] key: what is wrong`, before
anything runs. Secrets never live in the file: `*_env` keys name environment variables,
read only when a secret is actually needed (`Config.secret`).

A little over 400 lines on purpose: the schema (every key, its checker and default) is
one table, and the checkers it names sit beside it so that a key's rule is found next to
the key.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from dripper.customers.addresses import is_valid_timezone
from dripper.errors import ConfigError, InputError, Problem
from dripper.money import check_currency
from dripper.timeparse import parse_duration, parse_time_of_day

CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class FrequencyCap:
    """`max_per_customer = "1/2d"`: at most `count` emails in any `period`."""

    count: int
    period: timedelta


# --- the schema: section -> key -> (checker, default) -----------------------------------

Checker = Callable[[Any], Any]


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
    },
}
FREE_FORM = {"company"}  # any keys; templates see them as company.*


@dataclass(frozen=True)
class Config:
    """The whole configuration with defaults filled in and paths made absolute."""

    path: Path | None
    base_dir: Path
    campaigns_dir: Path
    templates_dir: Path
    samples_path: Path
    database_url: str
    sender_from: str
    reply_to: str
    postal_address: str
    unsubscribe_mailto: str
    company: Mapping[str, Any]
    transport: TransportSettings
    tracking: TrackingSettings
    dkim: DkimSettings
    replies: RepliesSettings
    bounces: BouncesSettings
    api: ApiSettings
    referrals: ReferralsSettings
    cadence: timedelta
    timezone: str
    quiet_hours: tuple[time, time] | None
    max_per_customer: FrequencyCap | None
    retry: tuple[timedelta, ...]
    give_up_after: timedelta
    lease: timedelta
    tick_seconds: int
    batch_size: int
    chunk: int = 4  # sends per connection between database writes (see services.delivery)
    # `[company] currency`: what total_spent and stats revenue count (DESIGN 12)
    currency: str = "USD"
    serve: ServeSettings = field(default_factory=ServeSettings)
    raw: Mapping[str, Mapping[str, Any]] = field(repr=False, default_factory=dict)

    def secret(self, env_name: str) -> str | None:
        """The value of the environment variable named by a `*_env` key, if set."""
        value = os.environ.get(env_name)
        return value or None

    @property
    def display_path(self) -> str:
        return str(self.path) if self.path else "(defaults: no config.toml)"


# --- loading ------------------------------------------------------------------------------


def find_config(explicit: Path | None, cwd: Path | None = None) -> Path | None:
    """`--config PATH` if given (it must exist), else ./config.toml if present, else None."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file (create one with `dripper init`)")
        return explicit
    candidate = (cwd or Path.cwd()) / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: Path | None) -> Config:
    """Load and check `path` (None: every default, relative to the current directory).
    Raises ConfigError listing every problem found, one per line."""
    if path is None:
        return _build(None, Path.cwd(), {})
    path = path.absolute()  # not resolve(): a symlinked config keeps its own folder
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = f":{m.group(1)}" if m else ""
        reason = re.sub(r"\s*\(at line.*\)$", "", str(exc))
        raise ConfigError(f"{path}{line}: not valid TOML: {reason}") from None
    return _build(path, path.parent, data, text)


def _build(path: Path | None, base: Path, data: dict[str, Any], text: str = "") -> Config:
    lines = _KeyLines(text)
    shown = str(path) if path else CONFIG_NAME
    problems: list[Problem] = []
    values: dict[str, dict[str, Any]] = {}

    currency = "USD"
    for section, content in data.items():
        if section in FREE_FORM:
            if not isinstance(content, dict):
                problems.append(
                    Problem(shown, lines.of(section), f"[{section}]", "must be a table")
                )
            elif "currency" in content:
                try:
                    currency = check_currency(content["currency"], where="currency")
                except InputError as exc:
                    message = str(exc).removeprefix("currency: ")
                    where = lines.of(section, "currency")
                    problems.append(Problem(shown, where, f"[{section}] currency", message))
            continue
        if section not in SCHEMA:
            hint = _did_you_mean(section, [*SCHEMA, *FREE_FORM])
            problems.append(
                Problem(shown, lines.of(section), f"[{section}]", f"unknown section{hint}")
            )
            continue
        if not isinstance(content, dict):
            problems.append(Problem(shown, lines.of(section), f"[{section}]", "must be a table"))
            continue
        for key, value in content.items():
            spec = SCHEMA[section].get(key)
            where = lines.of(section, key)
            if spec is None:
                hint = _did_you_mean(key, list(SCHEMA[section]))
                problems.append(Problem(shown, where, f"[{section}] {key}", f"unknown key{hint}"))
                continue
            try:
                values.setdefault(section, {})[key] = spec[0](value)
            except ValueError as exc:
                problems.append(Problem(shown, where, f"[{section}] {key}", str(exc)))

    if problems:
        raise ConfigError("\n".join(str(p) for p in problems))

    def get(section: str, key: str) -> Any:
        if key in values.get(section, {}):
            return values[section][key]
        return SCHEMA[section][key][1]

    def section_dict(section: str) -> dict[str, Any]:
        return {key: get(section, key) for key in SCHEMA[section]}

    company = dict(data.get("company", {}))
    postal = get("sender", "postal_address")
    company.setdefault("postal_address", postal)
    transport = section_dict("transport")
    transport["path"] = _resolve(base, transport["path"])
    transport["ca_file"] = _resolve(base, transport["ca_file"]) if transport["ca_file"] else None
    dkim = section_dict("dkim")
    dkim["private_key"] = _resolve(base, dkim["private_key"]) if dkim["private_key"] else None
    tracking = section_dict("tracking")
    if tracking["apple_relay_ranges"]:
        tracking["apple_relay_ranges"] = str(_resolve(base, tracking["apple_relay_ranges"]))

    return Config(
        path=path,
        base_dir=base,
        campaigns_dir=_resolve(base, get("project", "campaigns")),
        templates_dir=_resolve(base, get("project", "templates")),
        samples_path=_resolve(base, get("project", "samples")),
        database_url=_database_url(base, get("database", "url")),
        sender_from=get("sender", "from"),
        reply_to=get("sender", "reply_to"),
        postal_address=postal,
        unsubscribe_mailto=get("sender", "unsubscribe_mailto"),
        company=company,
        transport=TransportSettings(**transport),
        tracking=TrackingSettings(**tracking),
        dkim=DkimSettings(**dkim),
        replies=RepliesSettings(**section_dict("replies")),
        bounces=BouncesSettings(**section_dict("bounces")),
        api=ApiSettings(**section_dict("api")),
        referrals=ReferralsSettings(**section_dict("referrals")),
        serve=ServeSettings(**section_dict("serve")),
        cadence=get("project", "cadence"),
        timezone=get("sending", "timezone"),
        quiet_hours=get("sending", "quiet_hours"),
        max_per_customer=get("sending", "max_per_customer"),
        retry=get("sending", "retry"),
        give_up_after=get("sending", "give_up_after"),
        lease=get("sending", "lease"),
        tick_seconds=get("sending", "tick_seconds"),
        batch_size=get("sending", "batch_size"),
        chunk=get("sending", "chunk"),
        currency=currency,
        raw=values,
    )


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _database_url(base: Path, url: str) -> str:
    """A relative SQLite file is relative to the config file, like every other path."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith(":"):
            return prefix + str(base / rest)
    return url


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(choices)})"


class _KeyLines:
    """Line numbers of `[section]` headers and `key =` lines: tomllib gives none, and a
    problem without a line number sends people hunting."""

    _header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    _key = re.compile(r'^\s*"?([A-Za-z0-9_-]+)"?\s*=')

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple[str, str | None], int] = {}
        section = ""
        for number, line in enumerate(text.splitlines(), start=1):
            if m := self._header.match(line):
                section = m.group(1)
                self._lines.setdefault((section, None), number)
            elif m := self._key.match(line):
                self._lines.setdefault((section, m.group(1)), number)

    def of(self, section: str, key: str | None = None) -> int | None:
        return self._lines.get((section, key)) or self._lines.get((section, None))
