"""Jinja tags hidden from MJML and premailer as inert placeholders, then put back.

MJML and premailer must see the template once, before any customer is known, but the
template is full of `{{ }}` and `{% %}`. Each tag is swapped for an opaque token of
letters and digits those tools pass through untouched:

- a statement between elements (`{% for %}` around sections) becomes an HTML comment
  `<!--zjkqwmtx00004-->`, which MJML keeps in place (comments are not stripped);
- everything else (expressions, and statements inside attributes, comments or CSS)
  becomes the bare token, which survives in text and attribute values alike.

After compiling, `restore` swaps the tokens back. It refuses (returns None) when a
statement went missing, was duplicated or moved out of order: the caller then falls back
to compiling per email, which is slower but always right.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, replace
from functools import cached_property

from dripper.render.scan import scan

_MARKUP = re.compile(r"<!--|-->|<(/?)([A-Za-z][\w:.-]*)|>|\"|'")
_RAW_TEXT = {"style", "script", "mj-style", "title", "textarea"}
_BLANK = re.compile(r"\s+")
_ATTR_NAME = re.compile(r"([\w:.-]+)\s*=\s*$")
# MJML attributes whose value is copied through as text. Jinja in any other attribute of an
# mj-* element (width, padding, font-size...) would reach MJML's layout maths as a
# placeholder, so such a template is compiled per email instead.
_VERBATIM = {
    "href", "src", "alt", "title", "rel", "target", "name", "css-class", "mj-class",
    "color", "background-color", "container-background-color", "border-color",
    "font-family", "font-style", "font-weight", "text-decoration", "text-transform",
    "id", "srcset", "lang", "dir", "background-url", "title-color",
}  # fmt: skip


@dataclass(frozen=True)
class Placeholder:
    source: str  # the tag as written
    statement: bool
    lead: str = ""  # whitespace before and after a statement, carried inside it
    trail: str = ""

    def restored(self, for_text: bool) -> str:
        if for_text:  # in plain text, a run of blanks is one space
            return (" " if self.lead else "") + self.source + (" " if self.trail else "")
        return self.lead + self.source + self.trail


@dataclass(frozen=True)
class Protected:
    text: str
    nonce: str
    placeholders: tuple[Placeholder, ...]
    layout_jinja: str = ""  # where Jinja sits in an MJML attribute that is not verbatim

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"(<!--)?{self.nonce}(\d{{5}})(?(1)-->)")

    def statements_intact(self, compiled: str) -> bool:
        """Each statement exactly once and in source order: Jinja's block structure holds."""
        wanted = [i for i, p in enumerate(self.placeholders) if p.statement]
        seen = [
            int(m.group(2))
            for m in self.pattern.finditer(compiled)
            if self.placeholders[int(m.group(2))].statement
        ]
        return seen == wanted

    def with_expression(self, source: str) -> tuple[Protected, str]:
        """A copy with one more expression, for Jinja the compiler adds itself (the
        customer's `lang`), and the token that stands for it."""
        index = len(self.placeholders)
        if index >= 100_000:
            raise ValueError("more than 99,999 Jinja tags in one template")
        added = replace(self, placeholders=(*self.placeholders, Placeholder(source, False)))
        return added, f"{self.nonce}{index:05d}"

    def restore(self, compiled: str, *, for_text: bool = False) -> str:
        """The compiled text as a Jinja source again: tags back, stray `{{`/`{%`/`{#` in
        the tools' own output (CSS, say) escaped so Jinja reads them as text."""
        out: list[str] = []
        pos = 0
        for m in self.pattern.finditer(compiled):
            out.append(escape_jinja(compiled[pos : m.start()]))
            out.append(self.placeholders[int(m.group(2))].restored(for_text))
            pos = m.end()
        out.append(escape_jinja(compiled[pos:]))
        return "".join(out)


def escape_jinja(text: str) -> str:
    if "{" not in text:
        return text
    return re.sub(r"\{(?=[{%#]|$)", "{{ '{' }}", text)


def protect(flat: str) -> Protected:
    """Swap every Jinja tag of a flattened source for a placeholder."""
    nonce = _nonce(flat)
    placeholders: list[Placeholder] = []
    out: list[str] = []
    state = _State()
    layout_jinja = ""
    pos = 0
    tags = scan(flat)
    for i, tag in enumerate(tags):
        chunk = flat[pos : tag.start]
        state.feed(chunk)
        if tag.kind == "comment":
            out.append(chunk)
            pos = tag.end
            continue
        index = len(placeholders)
        if index >= 100_000:
            raise ValueError("more than 99,999 Jinja tags in one template")
        statement = tag.kind == "stmt"
        token = f"{nonce}{index:05d}"
        lead = trail = ""
        if statement and state.in_content:
            token = f"<!--{token}-->"
            # MJML drops whitespace-only text between a comment and an element, which
            # would glue "filter.{% endif %} <a>" into "filter.<a>": the whitespace
            # around the statement travels inside the placeholder instead.
            kept = chunk.rstrip()
            lead, chunk = chunk[len(kept) :], kept
            limit = tags[i + 1].start if i + 1 < len(tags) else len(flat)
            blank = _BLANK.match(flat, tag.end, limit)
            trail = blank.group() if blank else ""
        out.append(chunk)
        in_mjml_tag = state.mode == "tag" and state.tag.startswith("mj-")
        if in_mjml_tag and not layout_jinja and (not state.quote or state.attr not in _VERBATIM):
            layout_jinja = f"Jinja in the {state.attr or '(unquoted)'} attribute of <{state.tag}>"
        placeholders.append(Placeholder(flat[tag.start : tag.end], statement, lead, trail))
        out.append(token)
        pos = tag.end + len(trail)
    out.append(flat[pos:])
    return Protected("".join(out), nonce, tuple(placeholders), layout_jinja)


def _nonce(text: str) -> str:
    while True:
        nonce = "zj" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))
        if nonce not in text:
            return nonce


class _State:
    """Just enough of an HTML tokenizer to know whether a position is between elements
    (where a comment is harmless) or inside a tag, a comment or raw text like CSS."""

    def __init__(self) -> None:
        self.mode = "content"  # content | tag | comment | raw
        self.quote = ""
        self.tag = ""
        self.closing = False
        self.raw_name = ""
        self.attr = ""

    @property
    def in_content(self) -> bool:
        return self.mode == "content"

    def feed(self, text: str) -> None:
        for m in _MARKUP.finditer(text):
            piece = m.group()
            if self.mode == "content":
                if piece == "<!--":
                    self.mode = "comment"
                elif m.group(2):
                    self.mode, self.tag, self.closing = "tag", m.group(2).lower(), bool(m.group(1))
                    self.quote, self.attr = "", ""
            elif self.mode == "comment":
                if piece == "-->":
                    self.mode = "content"
            elif self.mode == "tag":
                if piece in ('"', "'"):
                    if not self.quote:
                        self.quote = piece
                        name = _ATTR_NAME.search(text, 0, m.start())
                        self.attr = name.group(1).lower() if name else ""
                    elif self.quote == piece:
                        self.quote = ""
                elif piece == ">" and not self.quote:
                    if self.tag in _RAW_TEXT and not self.closing:
                        self.mode, self.raw_name = "raw", self.tag
                    else:
                        self.mode = "content"
            elif self.mode == "raw" and m.group(1) and m.group(2).lower() == self.raw_name:
                self.mode, self.tag, self.closing = "tag", self.raw_name, True


_OPENERS = {"if", "for", "macro", "call", "filter", "with", "autoescape"}


def unconditional(protected: Protected, compiled: str) -> tuple[set[str], list[str]]:
    """What `compiled` outputs whatever the data: the expressions (as written, e.g.
    `unsubscribe_url`) and literal text outside every `{% if %}`, `{% for %}` and macro.
    Lets the renderer skip per-email searches for things the template always shows."""
    expressions: set[str] = set()
    literals: list[str] = []
    depth = 0
    pos = 0
    for m in protected.pattern.finditer(compiled):
        if depth == 0:
            literals.append(compiled[pos : m.start()])
        pos = m.end()
        placeholder = protected.placeholders[int(m.group(2))]
        inner = placeholder.source[2:-2].strip("-+ \t\r\n")
        if not placeholder.statement:
            if depth == 0 and placeholder.source.startswith("{{"):
                expressions.add(" ".join(inner.split()))
            continue
        word = inner.split(None, 1)[0] if inner else ""
        if word in _OPENERS or (word == "set" and "=" not in inner):
            depth += 1
        elif word.startswith("end"):
            depth -= 1
            if depth < 0:
                return set(), []
    if depth == 0:
        literals.append(compiled[pos:])
    return expressions, literals
