"""config.toml: load, check every key against its declared type, fill in defaults.

Every problem is reported, each as `file:line: [section] key: what is wrong`, before
anything runs. Secrets never live in the file: `*_env` keys name environment variables,
read only when a secret is actually needed (`Config.secret`).

Each section's keys, their checks and defaults are declared once, as the fields of its
typed settings (dripper/settings.py); this module reads the file against them and builds
one frozen `Config`.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from dripper.errors import ConfigError, InputError, Problem
from dripper.money import check_currency
from dripper.settings import SCHEMA as _SCHEMA
from dripper.settings import (
    TOPIC_NAME,
    ApiSettings,
    BouncesSettings,
    ConsentSettings,
    DkimSettings,
    FrequencyCap,
    ReferralsSettings,
    RepliesSettings,
    ServeSettings,
    SignupSettings,
    TrackingSettings,
    TransportSettings,
    _schema_of,
)
from dripper.settings_personal import (
    PERSONAL_SECTIONS,
    Person,
    TasksSettings,
    WebhooksSettings,
)
from dripper.settings_science import SCIENCE_SECTIONS, PredictSettings, StatsSettings

__all__ = [
    "CONFIG_NAME",
    "SCHEMA",
    "ApiSettings",
    "BouncesSettings",
    "Config",
    "ConsentSettings",
    "DkimSettings",
    "FrequencyCap",
    "Person",
    "PredictSettings",
    "ReferralsSettings",
    "RepliesSettings",
    "ServeSettings",
    "SignupSettings",
    "StatsSettings",
    "TasksSettings",
    "TrackingSettings",
    "TransportSettings",
    "WebhooksSettings",
    "find_config",
    "load_config",
]

CONFIG_NAME = "config.toml"
SCHEMA = {
    **_SCHEMA,
    **{name: _schema_of(cls) for name, cls in {**PERSONAL_SECTIONS, **SCIENCE_SECTIONS}.items()},
}


FREE_FORM = {"company", "topics"}  # any keys; templates see them as company.*
LANGUAGES = ("en", "de", "fr", "es", "nl")  # the pages' and footers' catalogs


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
    signup: SignupSettings = field(default_factory=SignupSettings)
    consent: ConsentSettings = field(default_factory=ConsentSettings)
    tasks: TasksSettings = field(default_factory=TasksSettings)
    webhooks: WebhooksSettings = field(default_factory=WebhooksSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    predict: PredictSettings = field(default_factory=PredictSettings)
    # `[topics]`: name -> label, in the file's order (DESIGN 13)
    topics: Mapping[str, str] = field(default_factory=dict)
    language: str = "en"  # `[company] language`: pages and footers without a locale
    max_per_week: int = 3  # `[project] max_per_week`: check's over-mailing warning
    sending_metrics: str = ""  # `[sending] metrics`: HOST:PORT of the daemon's /metrics
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
    language = "en"
    topics: dict[str, str] = {}
    for section, content in data.items():
        if section in FREE_FORM:
            if not isinstance(content, dict):
                problems.append(
                    Problem(shown, lines.of(section), f"[{section}]", "must be a table")
                )
                continue
            if section == "topics":
                for name, label in content.items():
                    where = lines.of(section, name)
                    if not TOPIC_NAME.fullmatch(name):
                        problems.append(
                            Problem(
                                shown,
                                where,
                                f"[topics] {name}",
                                "a topic name is lower-case "
                                "letters, digits, - and _, starting with a letter",
                            )
                        )
                    elif not isinstance(label, str) or not label.strip():
                        problems.append(
                            Problem(
                                shown,
                                where,
                                f"[topics] {name}",
                                'expected its label, like "The brewing letter"',
                            )
                        )
                    else:
                        topics[name] = label.strip()
                continue
            if "language" in content:
                lang = content["language"]
                if lang not in LANGUAGES:
                    problems.append(
                        Problem(
                            shown,
                            lines.of(section, "language"),
                            f"[{section}] language",
                            f"expected one of {', '.join(LANGUAGES)}, got {lang!r}",
                        )
                    )
                else:
                    language = lang
            if "currency" in content:
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

    signup_forms = values.get("signup", {}).get("forms")
    if signup_forms is not None:
        for form_id, form in signup_forms:
            for topic in form.topics or ():
                if topic not in topics:
                    problems.append(
                        Problem(
                            shown,
                            lines.of("signup"),
                            f"[signup.forms.{form_id}] topics",
                            f"topic {topic!r} is not in [topics]"
                            + (f" (known: {', '.join(topics)})" if topics else ""),
                        )
                    )

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
        signup=SignupSettings(**section_dict("signup")),
        consent=ConsentSettings(**section_dict("consent")),
        tasks=TasksSettings(**section_dict("tasks")),
        webhooks=WebhooksSettings(**section_dict("webhooks")),
        stats=StatsSettings(**section_dict("stats")),
        predict=PredictSettings(**section_dict("predict")),
        topics=topics,
        language=language,
        cadence=get("project", "cadence"),
        max_per_week=get("project", "max_per_week"),
        timezone=get("sending", "timezone"),
        quiet_hours=get("sending", "quiet_hours"),
        max_per_customer=get("sending", "max_per_customer"),
        retry=get("sending", "retry"),
        give_up_after=get("sending", "give_up_after"),
        lease=get("sending", "lease"),
        tick_seconds=get("sending", "tick_seconds"),
        batch_size=get("sending", "batch_size"),
        chunk=get("sending", "chunk"),
        sending_metrics=get("sending", "metrics"),
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
