"""Signed tokens for tracking pixels, click redirects and unsubscribe links; Message-IDs.

A token says what a URL is for (open, click, unsubscribe), which delivery it belongs to
(the random part of that email's Message-ID: nothing sequential, no database id) and,
for a click, the exact URL to redirect to. It is signed with HMAC-SHA256 under a key
id, so keys can be rotated, and checked in constant time. A click token can only ever
send someone to the http(s) URL that was signed into it: there is no open redirect.

    <kid>.<kind>.<delivery>.<sig>                       open (o) and unsubscribe (u)
    <kid>.c.<delivery>.<url, base64url>.<sig>             click
    <kid>.a.<delivery>.<question>.<answer, b64url>.<sig>  a one-click answer
    <kid>.r.<referral code>.<sig>                         a customer's referral link
    <kid>.s.<signup key>.<sig>                            a signup's confirm link

Every part is URL-safe (`[A-Za-z0-9_-]`). The signature is the HMAC truncated to 128 bits
(RFC 2104 allows truncation to half the hash), which keeps URLs short.

The secret comes from the environment variable named by `[tracking] secret_env`. It may
hold several secrets separated by commas: the first signs, all verify (rotation).
Previews sign with a fixed key whose id is `preview`; `dripper serve` never accepts it.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from dripper.errors import DripperError

PREVIEW_KEY_ID = "preview"
_PREVIEW_SECRET = b"dripper preview key: NOT SECRET, never accepted by dripper serve"
_SIG_BYTES = 16
_DELIVERY = re.compile(r"[a-z0-9]{8,64}")
_KEY_ID = re.compile(r"[a-z0-9]{1,16}")
_URL_BAD = re.compile(r"[\x00-\x20\x7f]")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
MAX_URL = 4096


class TokenError(DripperError):
    """A token is malformed, forged, signed with an unknown key, or of the wrong kind."""


class TokenKind(enum.StrEnum):
    OPEN = "o"
    CLICK = "c"
    UNSUBSCRIBE = "u"
    ANSWER = "a"
    REFERRAL = "r"
    SIGNUP = "s"
    TASK = "t"  # a task's one-click "done" link in a person's digest (DESIGN 16)


# How many dot-separated parts each kind's message has (key id and kind included).
_PARTS = {
    TokenKind.OPEN: 3,
    TokenKind.UNSUBSCRIBE: 3,
    TokenKind.CLICK: 4,
    TokenKind.ANSWER: 5,
    TokenKind.REFERRAL: 3,
    TokenKind.SIGNUP: 3,
    TokenKind.TASK: 3,
}
_KINDS = {kind.value: kind for kind in TokenKind}
QUESTION = re.compile(r"[a-z][a-z0-9_]{0,39}")  # becomes a customer attribute name
MAX_ANSWER = 100


@dataclass(frozen=True)
class TokenPayload:
    """What a verified token says."""

    kind: TokenKind
    delivery_id: str  # for a referral token: the referral code
    url: str | None = None
    key_id: str = ""
    question: str | None = None  # an answer token's question and answer
    answer: str | None = None


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes = field(repr=False)

    @classmethod
    def derive(cls, secret: str) -> SigningKey:
        """A key from a configured secret; its id is derived from it, so a rotation needs
        no extra setting and the id reveals nothing usable."""
        key = hmac.digest(b"dripper tokens v1", secret.encode("utf-8"), "sha256")
        kid = base64.b32encode(hashlib.sha256(b"dripper key id" + key).digest()[:5])
        return cls(kid.decode("ascii").lower(), key)


class Keyring:
    """Signs with the first key, verifies with any of them."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        for key in keys:
            if not _KEY_ID.fullmatch(key.key_id):
                raise ValueError(f"bad key id {key.key_id!r}")
        self.keys = {key.key_id: key for key in keys}
        self.signing = keys[0]
        self._prefix = self.signing.key_id + "."
        self._macs = {key.key_id: _Hmac(key.secret) for key in keys}
        self._mac = self._macs[self.signing.key_id]

    @classmethod
    def from_secret(cls, value: str) -> Keyring:
        """From the environment variable's value: one secret, or several comma-separated
        (newest first) while a rotation is under way."""
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise TokenError("the token secret is empty")
        short = [p for p in parts if len(p) < 16]
        if short:
            raise TokenError("the token secret is too short: use 16 characters or more")
        return cls([SigningKey.derive(p) for p in parts])

    @classmethod
    def preview(cls) -> Keyring:
        """The fixed, public key previews sign with: links work for looking, never for real."""
        return cls([SigningKey(PREVIEW_KEY_ID, _PREVIEW_SECRET)])

    @property
    def is_preview(self) -> bool:
        return self.signing.key_id == PREVIEW_KEY_ID

    # signing -------------------------------------------------------------------------------
    def sign_open(self, delivery_id: str) -> str:
        return self._sign(f"{self._prefix}o.{_checked_delivery(delivery_id)}")

    def sign_unsubscribe(self, delivery_id: str) -> str:
        return self._sign(f"{self._prefix}u.{_checked_delivery(delivery_id)}")

    def sign_click(self, delivery_id: str, url: str) -> str:
        return self.sign_click_encoded(_checked_delivery(delivery_id), encode_url(url))

    def sign_click_encoded(self, delivery_id: str, url_b64: str) -> str:
        """`sign_click` for a URL already checked and encoded by `encode_url`, and a
        delivery id already checked: the renderer encodes each link once per template."""
        return self._sign(f"{self._prefix}c.{delivery_id}.{url_b64}")

    def sign_answer(self, delivery_id: str, question: str, answer: str) -> str:
        """A one-click answer (`answer_url("rating", 5)`): the question is a name, the
        answer a short text; both are checked here, when the template renders."""
        check_answer(question, answer)
        encoded = _b64(answer.encode("utf-8"))
        return self._sign(f"{self._prefix}a.{_checked_delivery(delivery_id)}.{question}.{encoded}")

    def sign_referral(self, code: str) -> str:
        """A customer's own referral link: it names their referral code, nothing else."""
        return self._sign(f"{self._prefix}r.{_checked_delivery(code)}")

    def sign_signup(self, key: str) -> str:
        """A pending signup's confirm link: it names the signup's random key only."""
        return self._sign(f"{self._prefix}s.{_checked_delivery(key)}")

    def sign_task(self, key: str) -> str:
        """A task's "done" link: it names the task's random link key only."""
        return self._sign(f"{self._prefix}t.{_checked_delivery(key)}")

    def _sign(self, message: str) -> str:
        return f"{message}.{self._mac.sign(message.encode('ascii'))}"

    # verifying -----------------------------------------------------------------------------
    def verify(self, token: str, kind: TokenKind | None = None) -> TokenPayload:
        """The payload of a genuine token; TokenError for anything else."""
        if not isinstance(token, str) or len(token) > 2 * MAX_URL or not token.isascii():
            raise TokenError("malformed token")
        message, _, sig = token.rpartition(".")
        key_id = message.split(".", 1)[0]
        mac = self._macs.get(key_id)
        if mac is None:
            raise TokenError(f"token signed with an unknown key id {key_id!r}")
        if not hmac.compare_digest(mac.sign(message.encode("ascii")), sig):
            raise TokenError("bad token signature")
        parts = message.split(".")
        # A dict, not `TokenKind(...)`: the enum's lookup costs more than the HMAC here.
        found = _KINDS.get(parts[1]) if len(parts) > 1 else None
        if found is None:
            raise TokenError("malformed token")
        if len(parts) != _PARTS[found] or not _DELIVERY.fullmatch(parts[2]):
            raise TokenError("malformed token")
        if kind is not None and found is not kind:
            raise TokenError(
                f"expected a token of kind {kind.name.lower()}, got {found.name.lower()}"
            )
        url = None
        if found is TokenKind.CLICK:
            url = _unb64(parts[3])
            check_url(url)  # signed by us, but never redirect anywhere but http(s)
        question = answer = None
        if found is TokenKind.ANSWER:
            question, answer = parts[3], _unb64(parts[4])
            try:
                check_answer(question, answer)
            except TokenError:
                raise TokenError("malformed token") from None
        return TokenPayload(found, parts[2], url, key_id, question, answer)


class _Hmac:
    """HMAC-SHA256 (RFC 2104) with the keyed inner and outer states computed once: a
    token costs ~0.6 us instead of ~1.7 us for `hmac.digest`, and an email carries a
    couple of dozen of them. Tests check it against `hmac.digest`."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def sign(self, message: bytes) -> str:
        """The truncated MAC, base64url without padding (22 characters)."""
        encoded = binascii.b2a_base64(self.digest(message)[:_SIG_BYTES], newline=False)
        return encoded[:22].translate(_URLSAFE).decode("ascii")


def encode_url(url: str) -> str:
    """The URL as it travels inside a click token (checked: http(s) only)."""
    check_url(url)
    return _b64(url.encode("utf-8"))


def check_url(url: str) -> None:
    """Only absolute http(s) URLs without spaces or control characters are tracked."""
    lowered = url[:8].lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        raise TokenError(f"only http(s) links can be tracked, not {url[:40]!r}")
    host = url.split("//", 1)[1].split("/", 1)[0]
    if not host or len(url) > MAX_URL or _URL_BAD.search(url):
        raise TokenError(f"not a usable link: {url[:60]!r}")


def check_answer(question: str, answer: str) -> None:
    """A question is a short lower-case name (it becomes a customer attribute); an answer
    is a short line of text."""
    if not QUESTION.fullmatch(question):
        raise TokenError(
            f"answer_url: question {question[:40]!r} must be a short lower-case name, "
            "like 'rating' or 'first_bag'"
        )
    if not answer or len(answer) > MAX_ANSWER or not answer.isprintable():
        raise TokenError(
            f"answer_url: answer {answer[:40]!r} must be one line of at most {MAX_ANSWER} "
            "characters"
        )


def _unb64(text: str) -> str:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TokenError("malformed token") from None


def _checked_delivery(delivery_id: str) -> str:
    if not _DELIVERY.fullmatch(delivery_id):
        raise TokenError(f"bad delivery id {delivery_id!r}")
    return delivery_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- Message-IDs ------------------------------------------------------------------------------


def new_message_id(sender: str) -> str:
    """A fresh Message-ID (without angle brackets) for one delivery: 128 random bits in
    base32 at the domain of the From address. Generate it once per delivery, store it,
    and reuse it on every retry."""
    random_part = base64.b32encode(secrets.token_bytes(16)).rstrip(b"=").decode().lower()
    return f"{random_part}@{message_domain(sender)}"


def delivery_id(message_id: str) -> str:
    """The random part of a Message-ID: what tokens carry to name the delivery."""
    local = message_id.strip().strip("<>").rsplit("@", 1)[0]
    return _checked_delivery(local)


def message_domain(sender: str) -> str:
    """The domain of Message-IDs made for this sender (`new_message_id`)."""
    address = sender.rsplit("<", 1)[-1].strip().rstrip(">").strip()
    domain = address.rsplit("@", 1)[-1] if "@" in address else ""
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            domain = ""
    return domain.lower() or "dripper.invalid"
