"""Template sources flattened into one document, with a map back to every file and line.

MJML must compile a complete document once, but a template is spread over a layout
(`{% extends %}` + `{% block %}`), partials (`{% include %}`) and `<mj-include>`s. This
module resolves all of those at the source level, the way Jinja would at render time,
and remembers where each character came from, so an error in the compiled email can
still be reported as `partials/footer.mjml:7`.

Only what can be resolved statically is accepted: file names in quotes. Files must live
inside the templates folder (`..`, absolute paths and symlinks out of it are refused,
for `<mj-include>` too). Jinja names are relative to the templates folder; an
`<mj-include path>` is relative to the file that holds it, as in MJML.
"""

from __future__ import annotations

import bisect
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from dripper.render.errors import RenderError
from dripper.render.scan import (
    FROM,
    INCLUDE,
    Block,
    Doc,
    MjInclude,
    Node,
    SourceFile,
    Tag,
    Text,
    parse,
)

MAX_DEPTH = 16
MAX_FILE_BYTES = 1 << 20  # per template file, as for campaign files
_MJML_WRAPPER = re.compile(r"</?(?:mjml|mj-body)\b[^>]*>", re.IGNORECASE)


@dataclass
class Flat:
    """The flattened document: one text, plus where each piece of it came from."""

    text: str
    files: list[SourceFile]
    # (offset in text, file index, offset in that file); synthetic text maps to its tag
    segments: list[tuple[int, int, int]]

    def origin(self, offset: int) -> tuple[SourceFile, int]:
        i = max(bisect.bisect_right(self.segments, (offset, 1 << 30, 0)) - 1, 0)
        out_start, file_index, src_start = self.segments[i]
        source = self.files[file_index]
        return source, source.line_of(src_start + max(offset - out_start, 0))

    def line_origin(self, line: int) -> tuple[SourceFile, int]:
        """Where line `line` (1-based) of the flattened text came from."""
        offset = 0
        for _ in range(line - 1):
            offset = self.text.find("\n", offset) + 1
            if offset == 0:
                break
        return self.origin(offset)


class Flattener:
    """Resolves a template and everything it pulls in; one instance per compile."""

    def __init__(self, root: Path, display: str) -> None:
        self.root = root.resolve()
        self.display = display  # how the templates folder is named in messages
        self.docs: dict[str, Doc] = {}
        self.files: list[SourceFile] = []
        self._parts: list[str] = []
        self._segments: list[tuple[int, int, int]] = []
        self._size = 0

    # public ------------------------------------------------------------------------------
    def flatten(self, name: str) -> Flat:
        """`name` with everything it pulls in, as one text. Files read on the way are
        added to `files` (one Flattener can flatten a template and its .txt)."""
        self._parts, self._segments, self._size = [], [], 0
        try:
            self._template(name, (), None)
        except RenderError as exc:
            if exc.file is None:
                raise exc.located(f"{self.display}/{name}", None) from None
            raise
        return Flat("".join(self._parts), self.files, self._segments)

    def resolve(self, name: str, relative_to: Path | None = None) -> Path:
        """The file for `name`, refused unless it lies inside the templates folder."""
        candidate = Path(name)
        if candidate.is_absolute() or "\\" in name or re.match(r"^[a-z][a-z0-9+.-]*:", name):
            raise RenderError(f"{name!r}: templates must be named relative to {self.display}")
        base = relative_to if relative_to is not None else self.root
        path = (base / candidate).resolve()
        if not path.is_relative_to(self.root):
            raise RenderError(f"{name!r} is outside the templates folder {self.display}")
        return path

    # loading -----------------------------------------------------------------------------
    def _load(self, name: str) -> Doc:
        if name in self.docs:
            return self.docs[name]
        path = self.resolve(name)
        text = self._read(name, path)
        lines = [0] + [m.end() for m in re.finditer("\n", text)]
        source = SourceFile(path, path.relative_to(self.root).as_posix(), text, lines)
        self.files.append(source)
        try:
            doc = parse(source)
        except RenderError as exc:
            raise exc.located(self._shown(source), exc.line, path) from None
        self.docs[name] = doc
        return doc

    def _read(self, name: str, path: Path) -> str:
        """The file's text, refused unread when it is over MAX_FILE_BYTES: a 48 MB template
        once took `dripper check` 53 s and 2.2 GB, and no email needs a fraction of that."""
        try:
            status = path.stat()
        except FileNotFoundError:
            raise RenderError(f"template {name!r} not found in {self.display}") from None
        except OSError as exc:
            raise RenderError(f"cannot read template {name!r}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device would never end
            raise RenderError(f"template {name!r} is not a regular file")
        if status.st_size > MAX_FILE_BYTES:
            raise _too_large(name, status.st_size)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)  # it may have grown since
        except OSError as exc:
            raise RenderError(f"cannot read template {name!r}: {exc.strerror or exc}") from None
        if len(data) > MAX_FILE_BYTES:
            raise _too_large(name, len(data))
        try:
            # Universal newlines, as text-mode reading gives: line numbers count "\n".
            return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError as exc:
            raise RenderError(
                f"template {name!r} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
            ) from None

    # emitting ----------------------------------------------------------------------------
    def _template(
        self, name: str, stack: tuple[str, ...], at: tuple[SourceFile, Tag] | None
    ) -> None:
        if name in stack or len(stack) >= MAX_DEPTH:
            where = at[0].line_of(at[1].start) if at else None
            raise RenderError(
                f"templates include or extend each other in a loop: {' -> '.join((*stack, name))}",
                file=self._shown(at[0]) if at else None,
                line=where,
            )
        chain = [self._load(name)]
        while (parent := chain[-1].extends) is not None:
            child = chain[-1]
            try:
                if parent in stack or parent in (d.file.name for d in chain):
                    raise RenderError(f"templates extend each other in a loop at {parent!r}")
                chain.append(self._load(parent))
            except RenderError as exc:
                if exc.file is None:
                    raise exc.located(
                        self._shown(child.file), child.extends_line, child.file.path
                    ) from None
                raise
        stack = (*stack, *(d.file.name for d in chain))
        definitions: dict[str, list[tuple[Doc, Block]]] = {}
        for doc in chain:
            for block_name, block in doc.blocks.items():
                definitions.setdefault(block_name, []).append((doc, block))
        for doc in chain[:-1]:  # a child's top-level set/from/macro still run in Jinja
            self._hoist(doc, stack)
        root = chain[-1]
        self._nodes(root, root.nodes, definitions, stack, None)

    def _hoist(self, doc: Doc, stack: tuple[str, ...]) -> None:
        depth = 0
        for node in doc.nodes:
            if not isinstance(node, Tag) or node.kind != "stmt":
                if depth and isinstance(node, Text):
                    self._emit(doc.file, node.start, node.end)
                continue
            word = node.word
            if word == "macro":
                depth += 1
            if depth or word in ("set", "from"):
                if word == "set" and "=" not in node.inner and not depth:
                    raise RenderError(
                        "a {% set %}...{% endset %} block outside any block of a child "
                        "template is not supported; move it into a block",
                        file=self._shown(doc.file),
                        line=doc.file.line_of(node.start),
                    )
                self._tag(doc, node, stack)
            if word == "endmacro":
                depth -= 1

    def _nodes(
        self,
        doc: Doc,
        nodes: list[Node],
        definitions: dict[str, list[tuple[Doc, Block]]],
        stack: tuple[str, ...],
        current: tuple[str, int] | None,
    ) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self._emit(doc.file, node.start, node.end)
            elif isinstance(node, Block):
                self._block(node.name, 0, definitions, stack)
            elif isinstance(node, MjInclude):
                self._mj_include(doc, node, stack)
            elif node.kind == "var" and node.inner.replace(" ", "") == "super()":
                if current is None or current[1] + 1 >= len(definitions[current[0]]):
                    raise RenderError(
                        "super() has no parent block to call",
                        file=self._shown(doc.file),
                        line=doc.file.line_of(node.start),
                    )
                self._block(current[0], current[1] + 1, definitions, stack)
            elif node.kind != "comment":
                self._tag(doc, node, stack)

    def _block(
        self,
        name: str,
        level: int,
        definitions: dict[str, list[tuple[Doc, Block]]],
        stack: tuple[str, ...],
    ) -> None:
        doc, block = definitions[name][level]
        if block.required and level == 0 and len(definitions[name]) == 1:
            raise RenderError(
                f"block {name!r} is required: the template must fill it",
                file=self._shown(doc.file),
                line=doc.file.line_of(block.open.start),
            )
        self._nodes(doc, block.children, definitions, stack, (name, level))

    def _tag(self, doc: Doc, tag: Tag, stack: tuple[str, ...]) -> None:
        word = tag.word if tag.kind == "stmt" else ""
        line = doc.file.line_of(tag.start)
        if word in ("include", "from"):
            m = (INCLUDE if word == "include" else FROM).match(tag.inner)
            if not m:
                raise RenderError(
                    f"{{% {word} %}} must name one file in quotes",
                    file=self._shown(doc.file),
                    line=line,
                )
            target = m.group(1) or m.group(2)
            if word == "include" and m.group(3):
                try:
                    self.resolve(target).stat()
                except (OSError, RenderError):
                    return
            try:
                self._template(target, stack, (doc.file, tag))
            except RenderError as exc:
                if exc.file is None:
                    raise exc.located(self._shown(doc.file), line, doc.file.path) from None
                raise
            return
        self._emit(doc.file, tag.start, tag.end)

    def _mj_include(self, doc: Doc, node: MjInclude, stack: tuple[str, ...]) -> None:
        line = doc.file.line_of(node.start)
        try:
            path = self.resolve(node.path, doc.file.path.parent)
        except RenderError as exc:
            raise exc.located(self._shown(doc.file), line, doc.file.path) from None
        name = path.relative_to(self.root).as_posix()
        if node.type == "css":
            self._synthetic(
                doc.file,
                node.start,
                '<mj-style inline="inline">' if node.inline_css else "<mj-style>",
            )
        elif node.type == "html":
            self._synthetic(doc.file, node.start, "<mj-raw>")
        first = len(self._parts)
        try:
            self._template(name, stack, (doc.file, Tag("stmt", node.start, node.start, "")))
        except RenderError as exc:
            if exc.file is None:  # the included file itself: missing, too large...
                raise exc.located(self._shown(doc.file), line, doc.file.path) from None
            raise
        if node.type == "mjml":
            # An included MJML file may be a whole <mjml><mj-body> document: keep its body.
            for i in range(first, len(self._parts)):
                self._parts[i] = _MJML_WRAPPER.sub("", self._parts[i])
            self._reindex(first)
        elif node.type == "css":
            self._synthetic(doc.file, node.start, "</mj-style>")
        else:
            self._synthetic(doc.file, node.start, "</mj-raw>")

    def _reindex(self, first: int) -> None:
        """Offsets of segments after a wrapper was cut out (rare: only for <mj-include>)."""
        offset = self._segments[first][0] if first < len(self._segments) else self._size
        for i in range(first, len(self._parts)):
            _old, file_index, src = self._segments[i]
            self._segments[i] = (offset, file_index, src)
            offset += len(self._parts[i])
        self._size = offset

    def _emit(self, source: SourceFile, start: int, end: int) -> None:
        if start >= end:
            return
        self._segments.append((self._size, self.files.index(source), start))
        self._parts.append(source.text[start:end])
        self._size += end - start

    def _synthetic(self, source: SourceFile, at: int, text: str) -> None:
        self._segments.append((self._size, self.files.index(source), at))
        self._parts.append(text)
        self._size += len(text)

    def _shown(self, source: SourceFile) -> str:
        return f"{self.display}/{source.name}"


def _too_large(name: str, size: int) -> RenderError:
    return RenderError(
        f"template {name!r} is larger than 1 MiB ({size:,} bytes): refused; "
        "link large images and files instead of embedding them"
    )
