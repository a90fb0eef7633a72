"""Jinja tags found in a template source, and a source parsed into blocks.

Only the structure that matters for flattening (see source.py) is understood: blocks,
`extends`, `include`/`from` and `<mj-include>`. Every other tag is kept as an opaque piece
of text; Jinja itself compiles the result and reports its syntax errors.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

from dripper.render.errors import RenderError

_OPENER = re.compile(r"\{[{%#]")
_ENDRAW = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")
_QUOTED = r"""(?:"([^"]+)"|'([^']+)')"""
EXTENDS = re.compile(rf"extends\s+{_QUOTED}\s*$")
INCLUDE = re.compile(
    rf"include\s+{_QUOTED}(\s+ignore\s+missing)?(?:\s+(?:with|without)\s+context)?\s*$"
)
FROM = re.compile(rf"from\s+{_QUOTED}\s+import\s+[\w\s,]+$")
_MJ_INCLUDE = re.compile(r"<mj-include\b([^>]*?)/?>(?:\s*</mj-include>)?", re.IGNORECASE)
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True)
class Tag:
    """One `{{ }}`, `{% %}`, `{# #}` or whole `{% raw %}...{% endraw %}` in a source."""

    kind: str  # "var" | "stmt" | "comment" | "raw"
    start: int
    end: int
    inner: str  # between the delimiters, whitespace-control marks and blanks stripped

    @property
    def word(self) -> str:
        return self.inner.split(None, 1)[0] if self.inner else ""


def scan(source: str) -> list[Tag]:
    """Every Jinja tag in `source`, in order, respecting quotes and bracket nesting the
    way Jinja's lexer does (so `{{ {'a': 1} }}` is one tag)."""
    tags: list[Tag] = []
    pos = 0
    while m := _OPENER.search(source, pos):
        start = m.start()
        opener = m.group()
        if opener == "{#":
            end = source.find("#}", start + 2)
            if end < 0:
                raise _unclosed(source, start, "comment")
            tags.append(Tag("comment", start, end + 2, ""))
            pos = end + 2
            continue
        end = _tag_end(source, start + 2, "}}" if opener == "{{" else "%}")
        if end < 0:
            raise _unclosed(source, start, "tag")
        inner = source[start + 2 : end - 2].strip("-+ \t\r\n")
        kind = "var" if opener == "{{" else "stmt"
        if kind == "stmt" and inner.split(None, 1)[:1] == ["raw"]:
            raw_end = _ENDRAW.search(source, end)
            if raw_end is None:
                raise _unclosed(source, start, "{% raw %} block")
            tags.append(Tag("raw", start, raw_end.end(), inner))
            pos = raw_end.end()
            continue
        tags.append(Tag(kind, start, end, inner))
        pos = end
    return tags


def _tag_end(source: str, pos: int, closer: str) -> int:
    depth = 0
    quote = ""
    n = len(source)
    while pos < n:
        ch = source[pos]
        if quote:
            if ch == "\\":
                pos += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}" and depth:
            depth -= 1
        elif depth == 0 and source.startswith(closer, pos):
            return pos + 2
        pos += 1
    return -1


def _unclosed(source: str, offset: int, what: str) -> RenderError:
    return RenderError(f"unclosed {what}", line=source.count("\n", 0, offset) + 1)


# --- documents ----------------------------------------------------------------------------


@dataclass
class Block:
    name: str
    open: Tag
    close: Tag
    required: bool
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Text:
    start: int
    end: int


@dataclass(frozen=True)
class MjInclude:
    """An `<mj-include path=...>` found in the text of an MJML source."""

    start: int
    path: str
    type: str
    inline_css: bool


Node = Text | Tag | Block | MjInclude


@dataclass
class SourceFile:
    path: Path
    name: str  # relative to the templates folder, with "/"
    text: str
    lines: list[int]  # offsets where each line starts

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.lines, offset)


@dataclass
class Doc:
    file: SourceFile
    nodes: list[Node]
    extends: str | None
    blocks: dict[str, Block]
    extends_line: int | None = None


def parse(source: SourceFile) -> Doc:
    """The tags of `source` as a tree: blocks nested, `extends` noted, and in MJML files
    each `<mj-include>` picked out of the text."""
    text = source.text
    is_mjml = source.path.suffix.lower() == ".mjml"
    stack: list[Block] = []
    top: list[Node] = []
    blocks: dict[str, Block] = {}
    extends: str | None = None
    extends_line: int | None = None
    pos = 0

    def add(node: Node) -> None:
        (stack[-1].children if stack else top).append(node)

    def add_text(start: int, end: int) -> None:
        if start >= end:
            return
        if not is_mjml:
            add(Text(start, end))
            return
        for m in _MJ_INCLUDE.finditer(text, start, end):
            add(Text(start, m.start()))
            add(_mj_include(m.group(1), m.start(), source))
            start = m.end()
        if "<mj-include" in text[start:end].lower():
            raise RenderError(
                "<mj-include> must name its file with a plain path", line=source.line_of(start)
            )
        add(Text(start, end))

    for tag in scan(text):
        add_text(pos, tag.start)
        pos = tag.end
        word = tag.word if tag.kind == "stmt" else ""
        line = source.line_of(tag.start)
        if word == "extends":
            m = EXTENDS.match(tag.inner)
            if not m or stack:
                raise RenderError('use {% extends "layout.mjml" %} at the top level', line=line)
            extends = m.group(1) or m.group(2)
            extends_line = line
        elif word == "block":
            parts = tag.inner.split()
            if len(parts) < 2 or not parts[1].isidentifier() or parts[1] in blocks:
                raise RenderError(f"bad or repeated block: {{% {tag.inner} %}}", line=line)
            block = Block(parts[1], tag, tag, "required" in parts[2:])
            blocks[block.name] = block
            add(block)
            stack.append(block)
        elif word == "endblock":
            if not stack:
                raise RenderError("endblock without block", line=line)
            stack.pop().close = tag
        elif word == "import":
            raise RenderError(
                '{% import %} is not supported: use {% from "file" import name %} or {% include %}',
                line=line,
            )
        else:
            add(tag)
    add_text(pos, len(text))
    if stack:
        raise RenderError(
            f"block {stack[-1].name!r} is never closed",
            line=source.line_of(stack[-1].open.start),
        )
    return Doc(source, top, extends, blocks, extends_line)


def _mj_include(attributes: str, start: int, source: SourceFile) -> MjInclude:
    attrs = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _ATTR.finditer(attributes)
    }
    path = attrs.get("path", "")
    kind = attrs.get("type", "mjml").lower()
    if not path or kind not in ("mjml", "css", "html"):
        raise RenderError(
            '<mj-include> needs path="..." and type mjml, css or html', line=source.line_of(start)
        )
    return MjInclude(start, path, kind, attrs.get("css-inline", "").lower() == "inline")
