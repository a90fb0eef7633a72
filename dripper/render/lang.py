"""The `lang` of an email's `<html>`: the language its text is written in (DESIGN 15), in a
template compiled once.

MJML writes `lang="und"` (undetermined) unless `<mjml lang="...">` says otherwise, and a
`.html` template has whatever its `<html>` says. When a template names no language of its
own, the compiler gives its root element a placeholder that renders, per email, as the
campaign's `language:` (else `[company] language`, else `en`): a screen reader reads an
English email in an English voice whatever the customer's locale (dates and money still
follow the locale). A template that does set `lang` keeps it.
"""

from __future__ import annotations

import contextlib
import functools
import html as htmllib
import re
from html.parser import HTMLParser
from typing import Any

LANG_VALUE = "dripper_lang"  # the context's name for it (the renderer sets it)
LANG_SOURCE = "{{ dripper_lang|html_lang }}"
UNDETERMINED = "und"
_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def html_lang(locale: Any) -> str:
    """A BCP 47 tag for an HTML `lang` attribute: `pt_BR` -> `pt-BR`, `en_gb.UTF-8` ->
    `en-GB`; `und` for no locale or one that is not a language tag."""
    return _tag_of(locale) if isinstance(locale, str) else UNDETERMINED


@functools.lru_cache(maxsize=1024)  # runs for every email; a list has a handful of locales
def _tag_of(locale: str) -> str:
    # POSIX locale names carry an encoding and a modifier: en_GB.UTF-8@euro
    tag = locale.split(".", 1)[0].split("@", 1)[0].strip().replace("_", "-")
    if not _TAG.fullmatch(tag):
        return UNDETERMINED
    language, *subtags = tag.split("-")
    # Conventional case: language lower, script title, region upper (en-GB, zh-Hant-TW).
    shaped = [
        sub.upper() if len(sub) == 2 else sub.title() if len(sub) == 4 else sub.lower()
        for sub in subtags
    ]
    return "-".join([language.lower(), *shaped])


def with_root_lang(mjml: str, value: str) -> str:
    """`mjml` with `lang="value"` on its root `<mjml>` element, unless that already has
    a `lang`. The root is found by an HTML parser, so comments before it cannot fool it."""
    finder = _RootFinder()
    with contextlib.suppress(_Found):
        finder.feed(mjml)
    if finder.name != "mjml" or finder.has_lang or finder.root_at is None:
        return mjml
    cut = finder.root_at + len("<mjml")
    if mjml[finder.root_at : cut].lower() != "<mjml":
        return mjml
    return f'{mjml[:cut]} lang="{htmllib.escape(value)}"{mjml[cut:]}'


class _Found(Exception):
    """Stops the parser at the first element: nothing after it matters."""


class _RootFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.name = ""
        self.has_lang = False
        self.root_at: int | None = None
        self._source = ""

    def feed(self, data: str) -> None:
        self._source = data
        super().feed(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.name = tag
        self.has_lang = any(name == "lang" for name, _value in attrs)  # even empty: no twin
        line, column = self.getpos()
        start = 0
        for _ in range(line - 1):
            start = self._source.index("\n", start) + 1
        self.root_at = start + column
        raise _Found

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
