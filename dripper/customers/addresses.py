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
