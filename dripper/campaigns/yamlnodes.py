"""Reading YAML so that every value keeps its line: compose a node tree with the safe loader,
then build each value from its node, recording a Problem (file, line, key) for anything wrong
instead of raising.

Why not `yaml.safe_load`: it silently keeps the last of two equal keys and forgets where every
value was. Composing only builds nodes; scalars are then constructed one at a time by the
SafeLoader's own constructors, so tags such as `!!python/object` are still refused.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TypeVar

import yaml

from dripper.errors import Problem
from dripper.timeparse import Span, parse_duration, parse_span, parse_time_of_day

T = TypeVar("T")

# A campaign or edition file larger than this is refused before parsing (DESIGN 9).
MAX_FILE_BYTES = 1 << 20


class Bad(enum.Enum):
    """The value of a node that could not be read (its problem is already recorded)."""

    VALUE = "bad"


BAD = Bad.VALUE


@dataclass(frozen=True)
class Entry:
    """A value node with the dotted key that leads to it and the line to report."""

    key: str  # e.g. "steps[1].after"
    line: int  # 1-based: the key's line in a mapping, the item's line in a list
    node: yaml.Node


def read_source(path: Path) -> tuple[str | None, str]:
    """The text of a campaign or edition file, or None and why it cannot be read. The size is
    checked before reading: nothing in a campaigns folder has a reason to be large."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, f"file is larger than {MAX_FILE_BYTES // 1024} KiB: refused"
        # utf-8-sig: an editor's byte-order mark is not part of the text
        return path.read_text(encoding="utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"


def compose(text: str) -> tuple[yaml.Node | None, yaml.SafeLoader | None, Problem | None]:
    """Compose `text` into a node tree with the safe loader.

    Returns the root (None for an empty document) and the loader to construct scalars with, or
    the syntax problem as (file "", line, None, message): the caller fills in the file.
    """
    try:
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses characters YAML does not allow
        character = getattr(exc, "character", None)
        shown = f" (U+{character:04X})" if isinstance(character, int) else ""
        message = f"a character YAML does not allow{shown}: remove it"
        return None, None, Problem("", _reader_line(text, exc), None, message)
    try:
        root = loader.get_single_node()
        bad = _bad_character(root)
        if bad is not None:
            loader.dispose()
            return None, None, bad
        return root, loader, None
    except yaml.MarkedYAMLError as exc:
        loader.dispose()
        return None, None, syntax_problem(exc)
    except yaml.YAMLError as exc:
        loader.dispose()
        return None, None, Problem("", None, None, f"YAML syntax error: {exc}")
    except RecursionError:
        # PyYAML's composer recurses once per level: `[[[[...` would otherwise crash the check.
        loader.dispose()
        return None, None, Problem("", None, None, "YAML nested too deeply")


def _reader_line(text: str, exc: yaml.YAMLError) -> int | None:
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else None


def _bad_character(root: yaml.Node | None) -> Problem | None:
    """The first scalar (key or value) holding a character no campaign can use: a lone
    surrogate (`"\\ud800"`: not text at all, it cannot even be printed) or NUL."""
    pending = [root] if root is not None else []
    seen: set[int] = set()  # an alias can make the tree a graph, even a cycle
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            value = node.value
            if "\0" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
                shown = value.encode("utf-8", "backslashreplace").decode("ascii", "replace")
                return Problem(
                    "",
                    node.start_mark.line + 1,
                    None,
                    f"{shown[:40]!r} holds a character that is not text (a NUL or a lone "
                    "surrogate escape such as \\ud800): remove it",
                )
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pending += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value
    return None


def syntax_problem(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = exc.problem or "syntax error"
    if "\\t" in problem or "\t" in problem or "tab" in problem:
        return Problem("", line, None, "YAML syntax error: a tab character: use spaces, not tabs")
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    if "mapping values are not allowed" in problem:
        message += " (quote text that contains ': ')"
    return Problem("", line, None, message)


def describe(value: object) -> str:
    """A value as a message shows it: `true`, `14`, `'14x'`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a value"


class NodeReader:
    """Typed access to one file's nodes; every refusal becomes a Problem in `problems`."""

    def __init__(
        self, file: str, loader: yaml.SafeLoader, problems: list[Problem], line_offset: int = 0
    ) -> None:
        self.file = file
        self.loader = loader
        self.problems = problems
        self.line_offset = line_offset  # for YAML embedded in another file (front matter)
        self._visited: set[int] = set()  # ids of the mappings and lists read so far
        self._alias_reported = False

    def problem(self, line: int | None, key: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, key or None, message))

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1 + self.line_offset

    # -- structure ---------------------------------------------------------------------------

    def mapping(self, entry: Entry, allowed: Sequence[str]) -> dict[str, Entry] | None:
        """The entries of a mapping by key. Duplicate, unknown and non-text keys are problems
        (the first of two equal keys is kept)."""
        node = entry.node
        if not self._plain_tag(entry) or not self._first_visit(entry):
            return None
        if not isinstance(node, yaml.MappingNode):
            self.problem(
                entry.line, entry.key, f"expected a mapping of keys, got {self._got(node)}"
            )
            return None
        entries: dict[str, Entry] = {}
        for key_node, value_node in node.value:
            line = self.line(key_node)
            raw = self._construct(key_node) if isinstance(key_node, yaml.ScalarNode) else BAD
            if not isinstance(raw, str):
                shown = describe(raw) if raw is not BAD else _kind(key_node)
                self.problem(line, entry.key, f"keys must be text, got {shown}")
                continue
            path = f"{entry.key}.{raw}" if entry.key else raw
            if raw == "<<":
                self.problem(line, path, "YAML merge keys are not supported: write the keys out")
                continue
            if raw in entries:
                first = entries[raw].line
                self.problem(line, path, f"duplicate key '{raw}' (first at line {first})")
                continue
            if raw not in allowed:
                close = difflib.get_close_matches(raw, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problem(line, path, f"unknown key '{raw}'{hint}")
                continue
            entries[raw] = Entry(path, line, value_node)
        return entries

    def sequence(self, entry: Entry, *, allow_scalar: bool = False) -> list[Entry] | None:
        """The items of a list; with `allow_scalar`, a single value counts as a list of one."""
        node = entry.node
        if not self._plain_tag(entry):
            return None
        if allow_scalar and isinstance(node, yaml.ScalarNode):
            return [entry]
        if not self._first_visit(entry):
            return None
        if not isinstance(node, yaml.SequenceNode):
            self.problem(entry.line, entry.key, f"expected a list, got {self._got(node)}")
            return None
        return [
            Entry(f"{entry.key}[{i}]", self.line(item), item) for i, item in enumerate(node.value)
        ]

    # -- scalars -----------------------------------------------------------------------------

    def scalar(self, entry: Entry, what: str) -> object:
        """The constructed value of a scalar node, or BAD when it is not one."""
        if not self._plain_tag(entry):
            return BAD
        if not isinstance(entry.node, yaml.ScalarNode):
            self.problem(entry.line, entry.key, f"expected {what}, got {self._got(entry.node)}")
            return BAD
        value = self._construct(entry.node)
        if value is BAD:
            self.problem(entry.line, entry.key, f"cannot read {entry.node.value!r} as {what}")
        elif value is None:
            self.problem(entry.line, entry.key, f"expected {what}, got nothing")
            return BAD
        return value

    def string(
        self,
        entry: Entry,
        *,
        what: str = "text",
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
    ) -> str | None:
        """A non-empty string, matching `pattern` if given (`rule` explains the pattern)."""
        value = self.scalar(entry, what)
        if value is BAD:
            return None
        if not isinstance(value, str):
            hint = f' (quote it: "{entry.node.value}")'
            self.problem(entry.line, entry.key, f"expected {what}, got {describe(value)}{hint}")
            return None
        if not value.strip():
            self.problem(entry.line, entry.key, f"expected {what}, got an empty string")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(entry.line, entry.key, f"bad {what} {value!r} ({rule})")
            return None
        return value

    def boolean(self, entry: Entry) -> bool | None:
        value = self.scalar(entry, "true or false")
        if value is BAD:
            return None
        if not isinstance(value, bool):
            self.problem(entry.line, entry.key, f"expected true or false, got {describe(value)}")
            return None
        return value

    def duration(self, entry: Entry) -> timedelta | None:
        return self._parsed(entry, "a duration", parse_duration)

    def span(self, entry: Entry) -> Span | None:
        """A duration that may be in calendar months (`6mo`) or years (`1y`)."""
        return self._parsed(entry, "a duration", parse_span)

    def time_of_day(self, entry: Entry) -> time | None:
        return self._parsed(entry, "a time of day", parse_time_of_day)

    def date(self, entry: Entry) -> date | None:
        """A date: YAML reads an unquoted 2027-01-05 as one; a quoted ISO string is accepted."""
        value = self.scalar(entry, "a date")
        if value is BAD:
            return None
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        elif isinstance(value, date) and not isinstance(value, datetime):
            return value
        self.problem(
            entry.line, entry.key, f"bad date {describe(value)} (use YYYY-MM-DD, like 2027-01-05)"
        )
        return None

    def strings(self, entries: Iterable[Entry], what: str) -> list[tuple[Entry, str]]:
        """Each entry read as a string; the ones that are not are reported and left out."""
        found = []
        for item in entries:
            value = self.string(item, what=what)
            if value is not None:
                found.append((item, value))
        return found

    def data(self, entry: Entry) -> object:
        """Any plain value, as JSON would hold it (mappings with text keys, lists, text,
        numbers, booleans, null; a date is written as YYYY-MM-DD): a sample event's data.
        Every node is checked as everywhere else (tags, aliases); BAD after a problem."""
        node = entry.node
        if not self._plain_tag(entry):
            return BAD
        if isinstance(node, yaml.ScalarNode):
            value = self._construct(node)
            if value is BAD:
                self.problem(entry.line, entry.key, f"cannot read {node.value!r}")
            elif isinstance(value, date):
                return value.isoformat()
            return value
        if not self._first_visit(entry):
            return BAD
        if isinstance(node, yaml.SequenceNode):
            items = [
                self.data(Entry(f"{entry.key}[{i}]", self.line(item), item))
                for i, item in enumerate(node.value)
            ]
            return BAD if any(item is BAD for item in items) else items
        assert isinstance(node, yaml.MappingNode)
        found: dict[str, object] = {}
        for key_node, value_node in node.value:
            line = self.line(key_node)
            raw = self._construct(key_node) if isinstance(key_node, yaml.ScalarNode) else BAD
            if not isinstance(raw, str) or raw == "<<":
                self.problem(line, entry.key, "keys must be text (and no YAML merge keys)")
                return BAD
            if raw in found:
                self.problem(line, f"{entry.key}.{raw}", f"duplicate key '{raw}'")
                return BAD
            found[raw] = self.data(Entry(f"{entry.key}.{raw}", self.line(value_node), value_node))
            if found[raw] is BAD:
                return BAD
        return found

    # -- helpers -----------------------------------------------------------------------------

    def _parsed(self, entry: Entry, what: str, parse: Callable[[object], T]) -> T | None:
        value = self.scalar(entry, what)
        if value is BAD:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            self.problem(entry.line, entry.key, str(exc))
            return None

    def _first_visit(self, entry: Entry) -> bool:
        """Refuse a mapping or list reached a second time through a YAML alias (`*name`):
        a few hundred bytes of aliases could otherwise make the loader walk billions of nodes.
        Reported once per file; later reuses are refused silently."""
        if isinstance(entry.node, yaml.ScalarNode) or id(entry.node) not in self._visited:
            self._visited.add(id(entry.node))
            return True
        if not self._alias_reported:
            self._alias_reported = True
            self.problem(
                entry.line,
                entry.key,
                "YAML aliases of lists or mappings are not supported: write the value out",
            )
        return False

    def _plain_tag(self, entry: Entry) -> bool:
        """Refuse explicit tags the safe loader does not know (`!!python/object/apply:...`):
        they are never needed in a campaign, and are what a YAML exploit looks like."""
        tag = entry.node.tag
        if tag in yaml.SafeLoader.yaml_constructors:
            return True
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        self.problem(
            entry.line, entry.key, f"YAML tag {tag!r} is not allowed here: write plain values"
        )
        return False

    def _construct(self, node: yaml.Node) -> object:
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            # An unknown tag (`!!python/object`) or a timestamp that is not a real date.
            return BAD

    def _got(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.ScalarNode):
            value = self._construct(node)
            return describe(value) if value is not BAD else repr(node.value)
        if isinstance(node, yaml.MappingNode) and node.flow_style:
            return "a mapping (quote text that starts with '{')"
        return _kind(node)
