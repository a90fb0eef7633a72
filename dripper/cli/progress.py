"""A progress bar over a file's bytes, for imports: on a terminal only (DESIGN 5: long
work shows a bar on a terminal and stays quiet in a pipe)."""

from __future__ import annotations

from typing import Any

import click

from dripper.cli.common import is_terminal


class FileProgress:
    """A bar over the file's bytes on a terminal, silent in a pipe. Lines said while it
    runs print on stderr (above the bar)."""

    def __init__(self, label: str, total: int) -> None:
        self._label = label
        self._total = total or None
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> FileProgress:
        if is_terminal():
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self._label, total=self._total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, done: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done)

    def say(self, text: str) -> None:
        if self._progress is None:
            click.echo(text, err=True)
        else:
            self._progress.console.print(
                text, markup=False, highlight=False, emoji=False, soft_wrap=True
            )
