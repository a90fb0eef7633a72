"""Newsletter editions: Markdown files with YAML front matter in the folder a recurring
campaign names with `editions:`.

    ---
    title: Five ways to a better cup
    not_before: 2027-02-01     # optional: not sent in a run before this date
    ---
    The body, in CommonMark.

Editions are used in file-name order, so `01-...`, `02-...` is the way to plan a series. The
body is rendered with raw HTML disabled: an edition is prose, and the MJML template around it
does the layout. The text part gets the same body as readable plain text, written from
markdown-it's parse of it, never by pattern-matching the Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from dripper.campaigns.model import Edition
from dripper.campaigns.yamlnodes import Entry, NodeReader, compose, read_source
from dripper.errors import Problem

EDITION_KEYS = ("title", "not_before")
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")
_OPEN = re.compile(r"^---[ \t]*$")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")

# "commonmark" turns raw HTML on; an edition may not smuggle markup (or scripts) past MJML.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def render_markdown(text: str) -> str:
    html: str = _MARKDOWN.render(text)
    return html


def markdown_to_text(text: str) -> str:
    """The edition as the plain-text part shows it, from the same parse as the HTML:
    headings on their own line, underlined (h1 `===`, h2 `---`); no emphasis or code
    marks; links as `text (url)`; lists as `- item` / `1. item`; quotes as `> `; code
    as written."""
    return _TextWriter().write(_MARKDOWN.parse(text))


class _TextWriter:
    """Walks markdown-it's block tokens; `_inline` flattens each paragraph's children."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        # Open containers, outermost first: "> " for a quote, or a list item's marker
        # ("- ", "2. "), which turns into spaces once its first line is written.
        self.prefixes: list[str] = []
        self.lists: list[tuple[int, str] | None] = []  # next number and "." or ")"; None: bullets
        self.list_start = False  # a list that begins after other text wants a blank line first
        self.quoted = 0  # how deep in quotes the last line written was

    def write(self, tokens: Sequence[Token]) -> str:
        for i, token in enumerate(tokens):
            kind = token.type
            if kind == "inline" and tokens[i - 1].type == "heading_open":
                self._heading(self._inline(token), tokens[i - 1].tag)
            elif kind == "inline":
                self._block(self._inline(token).split("\n"), tokens[i - 1].hidden)
            elif kind in ("fence", "code_block"):
                self._block(token.content.rstrip("\n").split("\n"), False)
            elif kind == "hr":
                self._block(["-" * 20], False)
            elif kind == "blockquote_open":
                self.prefixes.append("> ")
            elif kind in ("bullet_list_open", "ordered_list_open"):
                start = int(token.attrs.get("start") or 1)
                self.lists.append((start, token.markup) if kind == "ordered_list_open" else None)
                self.list_start = not any(p != "> " for p in self.prefixes)  # not nested
            elif kind == "list_item_open":
                numbering = self.lists[-1] if self.lists else None
                if numbering is None:
                    self.prefixes.append("- ")
                else:
                    number, mark = numbering
                    self.prefixes.append(f"{number}{mark} ")
                    self.lists[-1] = (number + 1, mark)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
            elif kind in ("blockquote_close", "list_item_close"):
                self.prefixes.pop()
        return "\n".join(self.lines).strip("\n")

    def _heading(self, text: str, tag: str) -> None:
        text = " ".join(text.split())
        underline = {"h1": "=", "h2": "-"}.get(tag)
        self._block([text, underline * len(text)] if underline else [text], False)

    def _block(self, lines: list[str], tight: bool) -> None:
        quotes = self.prefixes.count("> ")
        if self.lines and (not tight or self.list_start):
            # the blank line belongs to the quotes around both blocks, not to a new one
            self.lines.append(("> " * min(quotes, self.quoted)).rstrip())
        self.list_start = False
        self.quoted = quotes
        for line in lines:
            self.lines.append(("".join(self.prefixes) + line).rstrip())
            # a list marker is written once; the item's later lines line up under its text
            self.prefixes = [p if p == "> " else " " * len(p) for p in self.prefixes]

    @staticmethod
    def _inline(token: Token) -> str:
        out: list[str] = []
        links: list[tuple[str, int]] = []  # href, where its label starts in `out`
        for child in token.children or ():
            kind = child.type
            if kind in ("text", "code_inline", "text_special"):
                out.append(child.content)
            elif kind in ("softbreak", "hardbreak"):
                out.append("\n")
            elif kind == "image":
                out.append(child.content)  # the alt text
            elif kind == "link_open":
                links.append((str(child.attrs.get("href") or ""), len(out)))
            elif kind == "link_close" and links:
                href, start = links.pop()
                label = "".join(out[start:])
                shown = href.removeprefix("mailto:")
                if href and shown != label:
                    out.append(f" ({href})" if label else href)
        return "".join(out)


def load_editions(
    folder: Path, display: Callable[[Path], str], problems: list[Problem]
) -> tuple[Edition, ...]:
    """Every `*.md` file of `folder` in file-name order; bad files are reported and left out."""
    editions: list[Edition] = []
    for path in sorted(p for p in folder.glob("*.md") if not p.name.startswith(".")):
        edition = load_edition(path, display(path), problems)
        if edition is not None:
            editions.append(edition)
    return tuple(editions)


def load_edition(path: Path, file: str, problems: list[Problem]) -> Edition | None:
    """One edition file, or None with its problems added to `problems`."""
    before = len(problems)

    def problem(line: int | None, key: str | None, message: str) -> None:
        problems.append(Problem(file, line, key, message))

    if not SLUG.fullmatch(path.stem):
        problem(
            1,
            None,
            f"bad edition file name {path.name!r}: use lower-case letters, digits, "
            "'-' and '_', like 01-brewing-basics.md (the name is what records it as sent)",
        )
    text, error = read_source(path)
    if text is None:
        problem(None, None, error)
        return None
    lines = text.splitlines()
    if not lines or not _OPEN.match(lines[0]):
        problem(
            1,
            None,
            "no front matter: start the file with a '---' line, a 'title:' line, "
            "and another '---' line",
        )
        return None
    end = next((i for i in range(1, len(lines)) if _CLOSE.match(lines[i])), None)
    if end is None:
        problem(1, None, "front matter is not closed: add a '---' line after it")
        return None
    root, loader, syntax = compose("\n".join(lines[1:end]) + "\n")
    if syntax is not None:
        line = None if syntax.line is None else syntax.line + 1
        problems.append(Problem(file, line, None, syntax.message))
        return None
    if root is None or loader is None:
        problem(1, None, "empty front matter: it needs at least 'title:'")
        return None
    try:
        reader = NodeReader(file, loader, problems, line_offset=1)
        fields = reader.mapping(Entry("", 2, root), EDITION_KEYS)
        title = not_before = None
        if fields is not None:
            if "title" in fields:
                title = reader.string(fields["title"], what="a title")
                if title is not None and len(title.strip().splitlines()) > 1:
                    # it is the subject line of the newsletter: a header holds one line
                    problem(fields["title"].line, "title", "a title is one line")
                    title = None
            else:
                problem(1, "title", "missing 'title' (the newsletter's headline)")
            if "not_before" in fields:
                not_before = reader.date(fields["not_before"])
    finally:
        loader.dispose()
    body = "\n".join(lines[end + 1 :]).strip("\n")
    if not body.strip():
        problem(end + 1, None, "the edition has no text after its front matter")
    if len(problems) > before or title is None:
        return None
    return Edition(
        slug=path.stem,
        title=title.strip(),
        not_before=not_before,
        markdown=body,
        html=render_markdown(body),
        text=markdown_to_text(body),
        path=path,
    )
