"""Address rules: validation without DNS, one normal form, and the hash kept on the
suppression list after a customer is forgotten."""

from __future__ import annotations

import hashlib
import zoneinfo
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


def normalize_email(address: str) -> str:
    """Validate (syntax only, no DNS) and return the address in its one stored form:
    email-validator's normalisation, lower-cased so duplicates merge case-insensitively.
    Raises ValueError with a reason fit for a user."""
    text = address.strip()
    if not text:
        raise ValueError("empty email address")
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email address {text!r}: {exc}") from None
    return str(info.normalized).lower()


def address_hash(normalized: str) -> str:
    """A stable digest of a normalised address: what suppression remembers of it."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1024)
def is_valid_timezone(name: str) -> bool:
    """True for an IANA zone name known to this machine (or the tzdata package)."""
    if not name or name != name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """Each country with one time zone for all of it, by its ISO 3166 code (tzdata's
    zone.tab; a country whose other zones only follow it since 1970, as Busingen follows
    Berlin, counts as one: zone1970.tab does not list such zones)."""
    tables: dict[str, str] = {}
    for name in ("zone.tab", "zone1970.tab"):
        text = _tz_table(name)
        if text is None:
            return {}
        tables[name] = text
    primary = {
        fields[2]
        for line in tables["zone1970.tab"].splitlines()
        if line and not line.startswith("#") and len(fields := line.split("\t")) >= 3
    }
    zones: dict[str, list[str]] = {}
    for line in tables["zone.tab"].splitlines():
        fields = line.split("\t")
        if line.startswith("#") or len(fields) < 3:
            continue
        zones.setdefault(fields[0], []).append(fields[2])
    found: dict[str, str] = {}
    for country, names in zones.items():
        if len(names) > 1:
            names = [n for n in names if n in primary]
        if len(names) == 1:
            found[country] = names[0]
    return found


def _tz_table(name: str) -> str | None:
    """One of tzdata's tables, from the tzdata package or the system's zoneinfo."""
    from importlib import resources
    from pathlib import Path

    try:
        return resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        pass
    try:
        return Path("/usr/share/zoneinfo", name).read_text(encoding="utf-8")
    except OSError:
        return None


def country_timezone(code: str | None) -> str | None:
    """The time zone of a country that has only one (`DE` -> Europe/Berlin, `JP` ->
    Asia/Tokyo); None for one with several (US, CA, ES, AU) or an unknown code."""
    if not code:
        return None
    return _country_zones().get(code.strip().upper())
