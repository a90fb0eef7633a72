"""The exception tree.

    DripperError            anything dripper reports to a user as one clear line (exit 2)
    ├── ConfigError         config.toml: unknown key, wrong type, missing secret
    ├── InputError          bad command-line input or data file (CSV row, JSON, address)
    ├── CampaignError       campaign files that do not load; carries every Problem found
    └── StoreError          the database cannot be used as asked (schema too old, lock held)

Problems are values, not exceptions, so a validator can collect all of them before failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in one file: where it is and what to do about it."""

    file: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class DripperError(Exception):
    """Root of every error dripper reports as one line; the CLI exits with `exit_code`."""

    exit_code = 2


class ConfigError(DripperError):
    """The configuration file or environment is wrong."""


class InputError(DripperError):
    """Bad input on the command line or in a data file."""


class StoreError(DripperError):
    """The database cannot be used as asked."""


class CampaignError(DripperError):
    """Campaign files that do not load; `problems` lists every one found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
