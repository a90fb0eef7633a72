"""dripper's own words in five languages (dripper/i18n): every message the pages, the
confirmation email and the footer use is translated in every catalog with the same
placeholders, and the language is chosen by locale, then Accept-Language, then the
company's."""

from __future__ import annotations

import re

import pytest

from dripper.i18n import LANGUAGES, choose, from_accept_language, language_of, words
from dripper.i18n.extract import message_ids, pot


def test_the_extraction_finds_the_pages_and_the_email() -> None:
    """Messages inside f-strings and in the confirmation template are found."""
    found = message_ids()
    assert "Unsubscribe" in found
    assert "Confirm my subscription" in found  # confirm.mjml
    assert "Stop all emails from {company} to {address}?" in found
    assert len(found) >= 40


@pytest.mark.parametrize("lang", [lang for lang in LANGUAGES if lang != "en"])
def test_every_message_is_translated(lang: str) -> None:
    """A non-empty translation of every message, keeping its placeholders."""
    t = words(lang)
    assert t.lang == lang
    for message in message_ids():
        translated = t.catalog.gettext(message)
        assert translated, (lang, message)
        assert translated != message, (lang, message)
        assert sorted(re.findall(r"\{\w+\}", translated)) == sorted(
            re.findall(r"\{\w+\}", message)
        ), (lang, message, translated)


def test_the_template_file_is_current() -> None:
    """messages.pot is what the code uses (regenerate: python -m dripper.i18n.extract)."""
    from pathlib import Path

    import dripper.i18n

    shipped = (Path(dripper.i18n.__file__).parent / "messages.pot").read_text("utf-8")
    assert shipped == pot()


def test_the_language_is_chosen_in_order() -> None:
    """The customer's locale first, then the browser's best wish, then the company's."""
    assert choose("de_AT", "fr", "es").lang == "de"
    assert choose(None, "ja, fr;q=0.8, nl;q=0.9", "es").lang == "nl"
    assert choose("ja", "ja", "es").lang == "es"
    assert choose(None, None, "zz").lang == "en"
    assert language_of("pt-BR") is None
    assert from_accept_language("de;q=0, fr;q=0.1") == "fr"
    assert from_accept_language("en;q=bad") is None


def test_placeholders_are_filled() -> None:
    """`t(message, name=value)` formats the translated text."""
    assert words("de")("Subscribe to {company}", company="Acme") != "Subscribe to Acme"
    assert words("en")("Subscribe to {company}", company="Acme") == "Subscribe to Acme"
