"""The physical lines of a UTF-8 text file, read in bounded blocks.

The csv module asks for one line at a time, and a file object would hand it a 1 GB line
without a line break in one piece. `Lines` reads fixed-size blocks and cuts the lines
itself, so memory stays bounded whatever the file holds: a line longer than `MAX_LINE`
is skipped to its end, replaced by an empty line (line numbers stay right) and noted in
`flags`, where the reader of the records finds it and refuses the record it was part of.
Lines holding a NUL character are noted there too: no spreadsheet writes one, and
PostgreSQL refuses to store it.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 1 << 20  # bytes; a real row is far shorter (a field is at most 10,000 characters)
BLOCK = 1 << 16
_NUL = "a cell contains a NUL character (\\x00): remove it and import again"


class NotUtf8(UnicodeDecodeError):
    """A line that is not UTF-8; `line` is its number in the file (1 = the header)."""

    def __init__(self, line: int, error: UnicodeDecodeError) -> None:
        super().__init__(error.encoding, error.object, error.start, error.end, error.reason)
        self.line = line


@dataclass(frozen=True)
class LineFlag:
    """A line that makes the record it belongs to bad."""

    line: int
    message: str


class Lines:
    """Iterate to get the decoded lines (with their line breaks, as the csv module wants
    them: \\n, \\r\\n and \\r all end a line). `line` is the number of the last line given,
    `consumed` the bytes read so far (for a progress bar)."""

    def __init__(self, raw: BinaryIO, *, max_line: int = MAX_LINE, block: int = BLOCK) -> None:
        self._raw = raw
        self._max_line = max_line
        self._block = block
        self.line = 0
        self.consumed = 0
        self.flags: list[LineFlag] = []

    def take_flags(self, through: int) -> list[LineFlag]:
        """The flags of lines up to `through`, removed (a record ending there owns them)."""
        if not self.flags or self.flags[0].line > through:
            return []
        taken = [f for f in self.flags if f.line <= through]
        self.flags = [f for f in self.flags if f.line > through]
        return taken

    def __iter__(self) -> Iterator[str]:
        carry = b""  # the start of a line whose end is in a later block
        skipping = False  # inside a line longer than max_line: dropping it to its end
        while block := self._raw.read(self._block):
            self.consumed += len(block)
            pieces = (carry + block).splitlines(keepends=True)
            # A last piece without a line break continues in the next block; so may a last
            # "\r", whose "\n" may be the next block's first byte.
            carry = b"" if pieces[-1].endswith(b"\n") else pieces.pop()
            for piece in pieces:
                if skipping:  # the end of the long line
                    skipping = False
                    yield self._dropped()
                elif len(piece) > self._max_line:
                    yield self._dropped()
                else:
                    yield self._decode(piece)
            if skipping or len(carry) > self._max_line:
                skipping = True
                carry = b"\r" if carry.endswith(b"\r") else b""
        if skipping or len(carry) > self._max_line:
            yield self._dropped()
        elif carry:
            yield self._decode(carry)

    def _decode(self, piece: bytes) -> str:
        self.line += 1
        if self.line == 1 and piece.startswith(codecs.BOM_UTF8):
            # Spreadsheet programs put a byte-order mark in front of the header.
            piece = piece[len(codecs.BOM_UTF8) :]
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotUtf8(self.line, exc) from None
        if "\x00" in text:
            self.flags.append(LineFlag(self.line, _NUL))
        return text

    def _dropped(self) -> str:
        self.line += 1
        limit = f"{self._max_line >> 20} MiB" if self._max_line >= 1 << 20 else "the limit"
        message = f"a line of more than {limit}: not a customer row (is this the file you meant?)"
        self.flags.append(LineFlag(self.line, message))
        return "\n"
