"""Notes on the customer's sheet and a campaign's own From (DESIGN 16), through the real
commands on each database."""

from __future__ import annotations

import email
import email.policy
import json

from tests.cli.conftest import Project


def test_notes_are_dated_listed_and_forgotten(project: Project) -> None:
    """`customers note` adds a dated note that `show` lists (and `--json`); an unknown
    customer, an empty note or control characters: exit 2, nothing added; `forget` erases
    them with the rest."""
    assert project.run("customers", "add", "ana@example.com").exit_code == 0
    added = project.run(
        "--now", "2027-01-04T15:00:00Z", "customers", "note", "ana@example.com", "Loves Kenya."
    )
    assert added.exit_code == 0, added.output
    shown = json.loads(project.run("customers", "show", "ana@example.com", "--json").output)
    assert shown["notes"] == [
        {"at": "2027-01-04T15:00:00+00:00", "text": "Loves Kenya.", "source": "customers note"}
    ]
    assert "Loves Kenya." in project.run("customers", "show", "ana@example.com").output
    for args, said in (
        (["nobody@example.com", "x"], "no such customer"),
        (["ana@example.com", "   "], "the note is empty"),
        (["ana@example.com", "bell\x07"], "control characters"),
    ):
        result = project.run("customers", "note", *args)
        assert result.exit_code == 2
        assert said in result.output
    shown = json.loads(project.run("customers", "show", "ana@example.com", "--json").output)
    assert len(shown["notes"]) == 1
    assert project.run("customers", "forget", "ana@example.com", "--yes").exit_code == 0
    assert project.run("customers", "add", "ana@example.com").exit_code == 0
    shown = json.loads(project.run("customers", "show", "ana@example.com", "--json").output)
    assert shown["notes"] == []


def test_a_campaigns_own_from(project: Project) -> None:
    """`from:` on a campaign is the From of its emails; another campaign keeps [sender]
    from; a bad one is a load problem with its line; with DKIM for another domain, check
    warns that it will not align."""
    path = project.root / "campaigns" / "vip.yaml"
    text = path.read_text()
    path.write_text('from: "Ana at Acme <ana@acme.test>"\n' + text)
    out = project.root / "vip.eml"
    result = project.run("preview", "vip", "--format", "eml", "-o", str(out))
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert str(message["From"]) == "Ana at Acme <ana@acme.test>"
    welcome = project.root / "welcome.eml"
    assert project.run("preview", "welcome", "--format", "eml", "-o", str(welcome)).exit_code == 0
    other = email.message_from_bytes(welcome.read_bytes(), policy=email.policy.default)
    assert str(other["From"]) == "Acme Coffee <hello@acme.test>"
    path.write_text('from: "not an address"\n' + text)
    bad = project.run("check", "--no-spamassassin")
    assert bad.exit_code == 1
    assert "vip.yaml:1: from:" in bad.output
    path.write_text('from: "Ana <ana@elsewhere.test>"\n' + text)
    key = project.root / "dkim.pem"
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key.write_bytes(pem)
    config = project.root / "config.toml"
    config.write_text(
        config.read_text()
        .replace('domain = ""', 'domain = "acme.test"', 1)
        .replace('selector = ""', 'selector = "s1"', 1)
        .replace('private_key = ""', f'private_key = "{key}"', 1)
    )
    aligned = project.run("check", "--no-spamassassin")
    assert "from: elsewhere.test is not the DKIM domain acme.test" in aligned.output
