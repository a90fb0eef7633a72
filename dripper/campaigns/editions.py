"""Newsletter editions: Markdown files with YAML front matter in the folder a recurring
campaign names with `editions:`.

    ---
    title: Five ways to a better cup
    not_before: 2027-02-01     # optional: not sent in a run before this date
    ---
    The body, in CommonMark.

Editions are used in file-name order, so `01-...`, `02-...` is the way to plan a series. The
body is rendered with raw HTML disabled: an edition is prose, and the MJML template around it
does the layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from markdown_it import MarkdownIt

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
        text=body,
        path=path,
    )
