"""Errors of the rendering pipeline.

    DripperError
    └── RenderError          a template or a value cannot be turned into an email
        ├── HeaderError      a header value would carry CR/LF (header injection) or is malformed
        └── LimitError       a template ran too long, produced too much or built a huge value

Every RenderError names where it happened (`file`, `line`) when that is known, so the CLI
can print `templates/welcome.mjml:12: customer.nickname is undefined`.
"""

from __future__ import annotations

from pathlib import Path

from dripper.errors import DripperError, Problem


class RenderError(DripperError):
    """A template or a value cannot be turned into an email; says where when it knows."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.path = path
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.file is None:
            return self.message
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"

    def located(self, file: str, line: int | None, path: Path | None = None) -> RenderError:
        """The same error placed at `file:line` (used once the line map knows where)."""
        return type(self)(self.message, file=file, line=line, path=path)

    def as_problem(self, key: str | None = None) -> Problem:
        return Problem(self.file or "(template)", self.line, key, self.message)


class HeaderError(RenderError):
    """A header value is refused: CR or LF in it would let data forge headers."""


class LimitError(RenderError):
    """A template exceeded its time, output or value-size budget."""
