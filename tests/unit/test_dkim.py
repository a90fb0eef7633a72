"""DKIM signatures made through OpenSSL verify with dkimpy, for RSA and ed25519."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dripper.dkim import DkimSigner, canonical_body
from dripper.errors import ConfigError

MESSAGE = (
    b"From: Acme Coffee <hello@acme.test>\r\n"
    b"To: =?utf-8?b?Wm/DqyDDmHJzdGVk?= <zoe@example.com>\r\n"
    b"Subject: Thank you,\r\n  Zo\xc3\xab!\r\n"
    b"Date: Mon, 04 Jan 2027 15:00:00 +0000\r\n"
    b"Message-ID: <abc123@acme.test>\r\n"
    b"List-Unsubscribe: <https://acme.test/u/tok>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello  Zoe,\t \r\nthanks for your order.   \r\n\r\n\r\n"
)


def _dns_for(public_record: bytes):  # type: ignore[no-untyped-def]
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"sel._domainkey.acme.test."
        return public_record

    return dnsfunc


def test_rsa_signature_verifies_with_dkimpy() -> None:
    """An RSA-2048 signature over the DESIGN 6 headers verifies with dkimpy."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signed = DkimSigner.from_pem("acme.test", "sel", pem).sign(MESSAGE, timestamp=1767225600)
    assert dkim.verify(signed, dnsfunc=_dns_for(record))
    header = signed.split(b"\r\n", 1)[0]
    for name in (
        b"From",
        b"To",
        b"Subject",
        b"Date",
        b"Message-ID",
        b"List-Unsubscribe",
        b"List-Unsubscribe-Post",
    ):
        assert name in header.split(b"h=", 1)[1].split(b";", 1)[0]


def test_tampering_breaks_the_signature() -> None:
    """Changing the subject after signing makes dkimpy reject the message."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signed = DkimSigner.from_pem("acme.test", "sel", pem).sign(MESSAGE, timestamp=1767225600)
    assert not dkim.verify(signed.replace(b"Thank you", b"Thank yoU"), dnsfunc=_dns_for(record))


def test_ed25519_signature_verifies_with_dkimpy() -> None:
    """An ed25519-sha256 signature (RFC 8463) verifies with dkimpy."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    signed = DkimSigner.from_pem("acme.test", "sel", pem).sign(MESSAGE, timestamp=1767225600)
    assert b"a=ed25519-sha256" in signed
    assert dkim.verify(signed, dnsfunc=_dns_for(record))


def test_body_canonicalisation() -> None:
    """Relaxed body: runs of spaces collapse, trailing spaces and empty lines go."""
    assert canonical_body(b"a  b \t\r\nc\r\n\r\n\r\n") == b"a b\r\nc\r\n"
    assert canonical_body(b"\r\n\r\n") == b""


def test_bad_keys_are_config_errors() -> None:
    """A file that is not a PEM key, or a key of another kind, is a clear config error."""
    with pytest.raises(ConfigError, match="not a usable PEM"):
        DkimSigner.from_pem("acme.test", "sel", b"not a key")
    dsa_key = ec.generate_private_key(ec.SECP256R1())
    pem = dsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="only RSA and ed25519"):
        DkimSigner.from_pem("acme.test", "sel", pem)
