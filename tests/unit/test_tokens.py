"""Signed tracking tokens and Message-IDs."""

from __future__ import annotations

import base64
import hmac
import re

import pytest

from dripper.tokens import (
    Keyring,
    SigningKey,
    TokenError,
    TokenKind,
    _Hmac,
    delivery_id,
    new_message_id,
)

SECRET = "a-long-enough-secret-for-tests-0123"
DELIVERY = "mzxw6ytboi3tenbvgy3tqmzxg4"


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.from_secret(SECRET)


def test_round_trip_each_kind(keyring: Keyring) -> None:
    """Open, click and unsubscribe tokens verify back to exactly what was signed."""
    url = "https://acme.test/shop?a=1&b=é#frag"
    assert keyring.verify(keyring.sign_open(DELIVERY)).kind is TokenKind.OPEN
    click = keyring.verify(keyring.sign_click(DELIVERY, url), TokenKind.CLICK)
    assert (click.delivery_id, click.url) == (DELIVERY, url)
    unsubscribe = keyring.verify(keyring.sign_unsubscribe(DELIVERY), TokenKind.UNSUBSCRIBE)
    assert unsubscribe.delivery_id == DELIVERY
    assert unsubscribe.url is None


def test_tokens_are_url_safe(keyring: Keyring) -> None:
    """Every character of a token can go in a URL path unescaped."""
    token = keyring.sign_click(DELIVERY, 'https://acme.test/ä?x=<y>&z="q"')
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)


@pytest.mark.parametrize("part", [0, 1, 2, 3, 4])
def test_any_tampering_is_refused(keyring: Keyring, part: int) -> None:
    """Changing any part of a click token (key id, kind, delivery, URL, signature) fails."""
    token = keyring.sign_click(DELIVERY, "https://acme.test/")
    pieces = token.split(".")
    evil = base64.urlsafe_b64encode(b"https://evil.test/").rstrip(b"=").decode()
    pieces[part] = {0: "zzzzzzzz", 1: "o", 2: "a" * 26, 3: evil, 4: "A" * 22}[part]
    with pytest.raises(TokenError):
        keyring.verify(".".join(pieces))


def test_wrong_kind_is_refused(keyring: Keyring) -> None:
    """An open token cannot be used as an unsubscribe token."""
    with pytest.raises(TokenError, match="expected a token of kind unsubscribe, got open"):
        keyring.verify(keyring.sign_open(DELIVERY), TokenKind.UNSUBSCRIBE)


def test_unknown_key_id_and_rotation(keyring: Keyring) -> None:
    """Another secret's tokens are refused by key id; during a rotation old tokens verify
    while new ones are signed with the new key."""
    other = Keyring.from_secret("another-secret-entirely-0123456789")
    with pytest.raises(TokenError, match="unknown key id"):
        keyring.verify(other.sign_open(DELIVERY))
    rotated = Keyring.from_secret(f"new-secret-0123456789abcdef,{SECRET}")
    assert rotated.verify(keyring.sign_open(DELIVERY)).kind is TokenKind.OPEN
    assert rotated.signing.key_id != keyring.signing.key_id
    with pytest.raises(TokenError):
        keyring.verify(rotated.sign_open(DELIVERY))


def test_same_key_id_other_secret_fails(keyring: Keyring) -> None:
    """A forged key under the real key id does not produce valid signatures."""
    fake = Keyring([SigningKey(keyring.signing.key_id, b"guessed")])
    with pytest.raises(TokenError, match="bad token signature"):
        keyring.verify(fake.sign_click(DELIVERY, "https://evil.test/"))


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,x", "ftp://acme.test/", "//evil.test/", "https:///x",
     "https://acme.test/a b", "https://acme.test/\r\nX: y", "mailto:a@b.test"],
)  # fmt: skip
def test_only_http_urls_can_be_signed(keyring: Keyring, url: str) -> None:
    """Click tokens are only made for absolute http(s) URLs without spaces or controls."""
    with pytest.raises(TokenError):
        keyring.sign_click(DELIVERY, url)


def test_verify_never_yields_a_non_http_url(keyring: Keyring) -> None:
    """Even a correctly signed token carrying a javascript: URL is refused on the way out."""
    encoded = base64.urlsafe_b64encode(b"javascript:alert(1)").rstrip(b"=").decode()
    token = keyring.sign_click_encoded(DELIVERY, encoded)  # bypasses the check on purpose
    with pytest.raises(TokenError, match="only http"):
        keyring.verify(token)


def test_preview_key_is_labelled_and_separate(keyring: Keyring) -> None:
    """Preview tokens say `preview` and never verify under a real key."""
    preview = Keyring.preview()
    token = preview.sign_open(DELIVERY)
    assert token.startswith("preview.")
    assert preview.is_preview
    assert not keyring.is_preview
    with pytest.raises(TokenError):
        keyring.verify(token)


def test_short_or_empty_secret_is_refused() -> None:
    """A guessable secret is refused outright."""
    for secret in ("", " , ", "short"):
        with pytest.raises(TokenError):
            Keyring.from_secret(secret)


def test_precomputed_hmac_matches_the_stdlib() -> None:
    """The fast HMAC equals hmac.digest for short, block-size and long keys."""
    for key in (b"", b"k" * 32, b"k" * 64, b"k" * 100):
        for message in (b"", b"abc", b"x" * 1000):
            assert _Hmac(key).digest(message) == hmac.digest(key, message, "sha256")


def test_message_ids_are_random_and_carry_the_delivery() -> None:
    """Message-IDs are 128 random bits in base32 at the From domain, never sequential."""
    ids = {new_message_id("Acme Coffee <hello@Acme.TEST>") for _ in range(200)}
    assert len(ids) == 200
    for message_id in ids:
        assert re.fullmatch(r"[a-z2-7]{26}@acme\.test", message_id)
        assert delivery_id(f"<{message_id}>") == message_id.split("@")[0]
    assert new_message_id("hello@bücher.example").endswith("@xn--bcher-kva.example")
    with pytest.raises(TokenError):
        delivery_id("../../etc@acme.test")


def test_answer_tokens_carry_their_question_and_answer() -> None:
    """An answer token round-trips its question and answer, and only a name and one short
    line of text can be signed into it."""
    ring = Keyring.from_secret("a-long-enough-secret-for-tests")
    token = ring.sign_answer("abcdefgh2345", "first_bag", "Not for me")
    payload = ring.verify(token, TokenKind.ANSWER)
    assert (payload.delivery_id, payload.question, payload.answer) == (
        "abcdefgh2345",
        "first_bag",
        "Not for me",
    )
    refused = (("First Bag", "x"), ("rating", ""), ("rating", "a\nb"), ("q", "x" * 101))
    for question, answer in refused:
        with pytest.raises(TokenError):
            ring.sign_answer("abcdefgh2345", question, answer)


def test_referral_tokens_name_a_code_and_nothing_else() -> None:
    """A referral token gives back its code; it is no open, click or answer token."""
    ring = Keyring.from_secret("a-long-enough-secret-for-tests")
    token = ring.sign_referral("0123456789abcdef")
    assert ring.verify(token, TokenKind.REFERRAL).delivery_id == "0123456789abcdef"
    for kind in (TokenKind.OPEN, TokenKind.CLICK, TokenKind.ANSWER, TokenKind.UNSUBSCRIBE):
        with pytest.raises(TokenError):
            ring.verify(token, kind)
