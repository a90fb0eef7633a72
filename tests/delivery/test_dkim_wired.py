"""The daemon signs what it sends: `dripper run --once` with [dkim] configured writes
emails whose signature verifies with dkimpy and covers the headers DESIGN 6 lists."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.cli.conftest import Project

# In the past: dkimpy refuses a signature whose t= lies in its future.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sent_emails_are_signed_and_verify(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIPPER_SECRET", "test-secret-not-for-production")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (project.root / "dkim.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    config = project.root / "config.toml"
    config.write_text(
        config.read_text()
        .replace('domain = ""', 'domain = "acme.test"')
        .replace('selector = ""', 'selector = "s1"')
        .replace('private_key = ""', 'private_key = "dkim.pem"')
    )
    assert project.run("check").exit_code == 0
    assert (
        project.run("--now", T0.isoformat(), "event", "purchase", "ada@example.com").exit_code == 0
    )
    result = project.run("--now", T0.isoformat(), "run", "--once")
    assert result.exit_code == 0, result.output

    [eml] = list((project.root / "outbox").glob("*.eml"))
    data = eml.read_bytes()
    assert data.startswith(b"DKIM-Signature: ")

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.acme.test."
        return record

    assert dkim.verify(data, dnsfunc=dns)
    header = data.split(b"\r\n\r\n", 1)[0].decode()
    signed = re.search(r"h=([^;]+);", header.replace("\r\n", ""))
    assert signed is not None
    names = {n.strip().lower() for n in signed.group(1).split(":")}
    assert {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    } <= names
