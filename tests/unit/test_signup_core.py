"""The pure part of signing up (engine/signup.py): a form's fields checked one by one, and
whether a confirmation email may go out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dripper.engine.signup import (
    ConfirmationFacts,
    SignupInvalid,
    confirmation_verdict,
    consent_hash,
    honeypot_filled,
    parse_signup,
)

FORMS = {"default": ("I agree.", None), "shop": ("Shop text.", ("offers",))}
TOPICS = ["news", "offers"]
NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)


def parse(**values: object) -> object:
    return parse_signup(values, forms=FORMS, topics=TOPICS)


def test_a_good_signup_is_normalised() -> None:
    """The address lower-cased, the name trimmed, the form's consent text hashed."""
    request = parse_signup(
        {"email": " Ada@Example.COM ", "first_name": " Ada ", "topics": ["news"]},
        forms=FORMS,
        topics=TOPICS,
    )
    assert request.email == "ada@example.com"
    assert request.first_name == "Ada"
    assert request.topics == ("news",)
    assert request.form == "default"
    assert request.text_hash == consent_hash("I agree.")


def test_no_topics_means_the_forms_topics() -> None:
    """Nothing ticked: every topic (None) on a form offering all, the form's own else."""
    assert parse_signup({"email": "a@example.com"}, forms=FORMS, topics=TOPICS).topics is None
    shop = parse_signup({"email": "a@example.com", "form": "shop"}, forms=FORMS, topics=TOPICS)
    assert shop.topics == ("offers",)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "email"),
        ({"email": "nope"}, "email"),
        ({"email": "x" * 255}, "email"),
        ({"email": "a@example.com", "first_name": "A\nB"}, "first_name"),
        ({"email": "a@example.com", "first_name": "<b>A</b>"}, "first_name"),
        ({"email": "a@example.com", "first_name": "see http://spam.example"}, "first_name"),
        ({"email": "a@example.com", "first_name": "x" * 101}, "first_name"),
        ({"email": "a@example.com", "topics": ["gossip"]}, "topics"),
        ({"email": "a@example.com", "form": "shop", "topics": ["news"]}, "topics"),
        ({"email": "a@example.com", "form": "other"}, "form"),
        ({"email": ["a@example.com"], "first_name": 5}, "first_name"),
    ],
)
def test_bad_fields_are_named(values: dict[str, object], field: str) -> None:
    """Each wrong field raises SignupInvalid naming it."""
    with pytest.raises(SignupInvalid) as caught:
        parse_signup(values, forms=FORMS, topics=TOPICS)
    assert caught.value.field == field


def test_the_honeypot() -> None:
    """Filled (even with spaces around text): a bot; empty or absent: a person."""
    assert honeypot_filled({"website": " http://x "}, "website")
    assert not honeypot_filled({"website": ""}, "website")
    assert not honeypot_filled({}, "website")


def facts(**changes: object) -> ConfirmationFacts:
    base: dict[str, object] = {
        "expires_at": NOW + timedelta(days=7),
        "sent_to_address": 0,
        "sent_in_day": 0,
        "hard_bounced_at": None,
    }
    base.update(changes)
    return ConfirmationFacts(**base)  # type: ignore[arg-type]


def test_the_confirmation_verdict() -> None:
    """Sent unless expired, already sent to the address today, over the daily cap, or the
    mailbox hard-bounced in the last 30 days (31 days ago is forgiven)."""
    assert confirmation_verdict(facts(), now=NOW, max_per_day=10) == ""
    assert "expired" in confirmation_verdict(facts(expires_at=NOW), now=NOW, max_per_day=10)
    assert "per address" in confirmation_verdict(facts(sent_to_address=1), now=NOW, max_per_day=10)
    assert "daily cap" in confirmation_verdict(facts(sent_in_day=10), now=NOW, max_per_day=10)
    assert "daily cap" in confirmation_verdict(facts(), now=NOW, max_per_day=0)
    bounced = facts(hard_bounced_at=NOW - timedelta(days=29))
    assert "hard-bounced" in confirmation_verdict(bounced, now=NOW, max_per_day=10)
    forgiven = facts(hard_bounced_at=NOW - timedelta(days=31))
    assert confirmation_verdict(forgiven, now=NOW, max_per_day=10) == ""
