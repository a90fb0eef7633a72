"""The words dripper itself puts on pages and in emails (DESIGN 13): the signup, confirm,
preference, unsubscribe and answer pages, the confirmation email and the footer dripper
adds, in English, German, French, Spanish and Dutch.

The catalogs are gettext `.po` files beside this module (`<lang>.po`), compiled once per
process by babel in memory (no build step, no `.mo` files to keep in step). The English
text is the message id. A language is chosen by the customer's `locale`, else the
browser's `Accept-Language`, else `[company] language`.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "de", "fr", "es", "nl")
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class Words:
    """One language's words: `t("Unsubscribe")`, `t("Hello {name}", name=...)`."""

    lang: str
    catalog: gettext.NullTranslations

    def __call__(self, message: str, **values: object) -> str:
        text = self.catalog.gettext(message)
        return text.format(**values) if values else text


@cache
def words(lang: str) -> Words:
    """The words of `lang` (English for a language without a catalog)."""
    if lang not in LANGUAGES or lang == "en":
        return Words("en", gettext.NullTranslations())
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with (_HERE / f"{lang}.po").open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Words(lang, gettext.GNUTranslations(compiled))


def language_of(locale: str | None) -> str | None:
    """`de_AT`, `de-AT`, `DE` -> `de`; None when it names no language we speak."""
    if not locale:
        return None
    lang = locale.replace("-", "_").split("_", 1)[0].strip().lower()
    return lang if lang in LANGUAGES else None


def from_accept_language(header: str | None) -> str | None:
    """The browser's most wanted language we speak (RFC 9110 quality values)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        lang = language_of(tag)
        if lang is not None and quality > 0:
            ranked.append((-quality, index, lang))
    return min(ranked)[2] if ranked else None


def choose(
    locale: str | None = None, accept_language: str | None = None, default: str = "en"
) -> Words:
    """The customer's locale, else the browser's wish, else the company's language."""
    lang = language_of(locale) or from_accept_language(accept_language) or default
    return words(lang if lang in LANGUAGES else "en")
