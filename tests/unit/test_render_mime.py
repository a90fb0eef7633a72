"""Hand-built MIME: header encoding and folding, injection refused, bodies CRLF and short."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from dripper.render import HeaderError
from dripper.render.mime import (
    Address,
    assemble,
    build_headers,
    display_name,
    unstructured,
)

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)


def _message(subject: str, to: Address, text: str = "Hi\n", html: str = "<p>Hi</p>") -> bytes:
    headers = build_headers(
        sender=Address("Acme Coffee", "hello@acme.test"),
        recipient=to,
        subject=subject,
        date=NOW,
        message_id="abc123xyz456@acme.test",
        reply_to=Address("", "reply@acme.test"),
        unsubscribe=["https://t.acme.test/u/token", "mailto:u@acme.test?subject=x"],
    )
    return assemble(headers, "=_abc123xyz456", text, html)


@pytest.mark.parametrize(
    "subject",
    [
        "Plain ASCII",
        "Çà et là — «10 %» 🎉",
        "=?utf-8?q?looks_encoded?= but is not",
        "A very long subject line that goes on and on " * 6,
        "Ünïcödé " * 40,
        "x" * 1500,
        "spaces  between   words",
    ],
)
def test_subjects_round_trip(subject: str) -> None:
    """Every subject comes back exactly through the stdlib parser, lines under 998."""
    mime = _message(subject, Address("Zoë", "zoe@example.com"))
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert max(len(line) for line in mime.split(b"\r\n")) < 998
    assert not parsed.defects


@pytest.mark.parametrize(
    "name",
    ["Zoë Ørsted", 'Acme "Best" Coffee, Inc.', "Dr. O'Neil (ret.)", "李小龍", "=?x?"],
)
def test_display_names_round_trip(name: str) -> None:
    """Display names with specials are quoted, non-ASCII ones encoded; both parse back."""
    mime = _message("Hi", Address(name, "zoe@example.com"))
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    address = parsed["To"].addresses[0]
    assert (address.display_name, address.addr_spec) == (name, "zoe@example.com")


def test_idn_domain_is_punycoded() -> None:
    """A Unicode domain goes out as its IDNA form."""
    assert Address("", "kim@bücher.example").header() == "kim@xn--bcher-kva.example"


@pytest.mark.parametrize("bad", ["a\r\nBcc: x@y.test", "a\nb", "a\rb", "a\x00b"])
def test_line_breaks_in_headers_are_refused(bad: str) -> None:
    """CR, LF or NUL in any header value is refused with a HeaderError."""
    with pytest.raises(HeaderError, match="line break"):
        _message(bad, Address("Zoë", "zoe@example.com"))
    with pytest.raises(HeaderError):
        _message("Hi", Address(bad, "zoe@example.com"))
    with pytest.raises(HeaderError):
        unstructured("X-Test", bad)


def test_bodies_are_crlf_short_and_exact() -> None:
    """Text (quoted-printable) and HTML (base64) decode to the exact input."""
    text = "Zoë, here is a very long line " + "word " * 300 + "\nend =\twith tab \n"
    html = "<p>" + "é" * 5000 + "</p>\n<p>=3D?</p>"
    mime = _message("Hi", Address("", "zoe@example.com"), text, html)
    assert b"\n" not in mime.replace(b"\r\n", b"")
    assert b"\r" not in mime.replace(b"\r\n", b"")
    assert max(len(line) for line in mime.split(b"\r\n")) <= 78
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    plain, rich = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None
    assert rich is not None
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content() == html


def test_display_name_forms() -> None:
    """Atoms stay bare, specials are quoted, non-ASCII is RFC 2047 encoded."""
    assert display_name("Acme Coffee") == "Acme Coffee"
    assert display_name("Acme, Inc.") == '"Acme, Inc."'
    assert display_name("Zoë").startswith("=?utf-8?b?")
