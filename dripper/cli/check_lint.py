"""The linter's part of `dripper check` (DESIGN 15): each rendered email linted
(dripper/render/lint.py), each finding placed at its template file and line where the
template shows it, one warning per template, rule and place however many samples hit it;
SpamAssassin's rules with local tests, where it is installed."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dripper.render.lint import Finding, lint

if TYPE_CHECKING:
    from dripper.render.model import RenderedEmail
    from dripper.render.renderer import Renderer


@dataclass(frozen=True)
class LintWarning:
    """One warning of the linter, as `check --json` gives it."""

    file: str | None
    line: int | None
    campaign: str | None
    step: str | None
    rule: str
    message: str
    error: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "campaign": self.campaign,
            "step": self.step,
            "rule": self.rule,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = (
            f"{self.file}:{self.line}: "
            if self.file and self.line
            else (f"{self.file}: " if self.file else "")
        )
        owner = f" ({self.campaign}/{self.step})" if self.campaign else ""
        return f"{where}{self.rule}: {self.message}{owner}"


class Linter:
    """Collects the warnings of every email `check` renders."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self.found: dict[tuple[str | None, int | None, str, str], LintWarning] = {}
        self._lines: dict[Path, list[str]] = {}

    @property
    def warnings(self) -> list[LintWarning]:
        return list(self.found.values())

    def email(self, campaign: str, step: str, template: str, email: RenderedEmail) -> None:
        compiled = self.renderer.template(template)
        findings = lint(
            email.html,
            email.text,
            subject=email.subject,
            kind=compiled.kind,
            target=self._target,
        )
        for finding in findings:
            file, line = self._place(template, finding)
            key = (file, line, finding.rule, finding.anchor or finding.message)
            if key not in self.found:
                self.found[key] = LintWarning(
                    file, line, campaign, step, finding.rule, finding.message, finding.error
                )

    def _target(self, href: str) -> str:
        """Where a tracked link (a preview-signed /c/ redirect) really goes."""
        base = f"{self.renderer.base_url}/c/"
        if not href.startswith(base):
            return href
        try:
            payload = self.renderer.keyring.verify(href[len(base) :])
        except Exception:
            return href
        return payload.url or href

    def _place(self, template: str, finding: Finding) -> tuple[str, int | None]:
        """The template file (a layout or partial included) and line that shows the
        finding's anchor; the template itself, without a line, when none does."""
        shown = self.renderer.template(template).display
        if not finding.anchor:
            return shown, None
        for path in self.renderer.template_files(template):
            lines = self._lines.get(path)
            if lines is None:
                try:
                    lines = path.read_text(encoding="utf-8").splitlines()
                except OSError:
                    lines = []
                self._lines[path] = lines
            for number, text in enumerate(lines, start=1):
                if finding.anchor in text:
                    return self.renderer._shown_path(path), number
        return shown, None


def spamassassin(mimes: list[bytes]) -> list[list[tuple[str, float]]] | None:
    """The SpamAssassin rules that fire on each message with local tests only (name,
    score), or None when SpamAssassin is not installed. One process for them all (an mbox):
    the program takes about a second to start, the messages a tenth each."""
    program = shutil.which("spamassassin")
    if program is None or not mimes:
        return None
    box = b"".join(
        b"From dripper@localhost Mon Jan  4 15:00:00 2027\n"
        + mime.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
        + b"\n"
        for mime in mimes
    )
    try:
        done = subprocess.run(
            [program, "-t", "-L", "--mbox"],
            input=box,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # Reports come in no set order: each is matched to its message by the Message-ID.
    by_id: dict[str, list[tuple[str, float]]] = {}
    for chunk in done.stdout.decode("utf-8", "replace").split("\nFrom dripper@localhost "):
        head, _, report = chunk.partition("Content analysis details:")
        message_id = next(
            (
                line.split(":", 1)[1].strip()
                for line in head.splitlines()
                if line.lower().startswith("message-id:")
            ),
            None,
        )
        if message_id is not None and report:
            by_id[message_id] = parse_report("Content analysis details:" + report)
    return [by_id.get(_message_id(mime), []) for mime in mimes]


def _message_id(mime: bytes) -> str:
    head = mime.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    for line in head.split("\r\n"):
        if line.lower().startswith("message-id:"):
            return line.split(":", 1)[1].strip()
    return ""


def parse_report(output: str) -> list[tuple[str, float]]:
    """The rules of a `spamassassin -t` report: the lines of its table, "pts rule name
    description", after the "---- ----" rule line."""
    fired: list[tuple[str, float]] = []
    table = False
    for line in output.splitlines():
        if line.startswith(" pts rule name") or line.startswith("pts rule name"):
            continue
        if line.strip().startswith("---- ----"):
            table = True
            continue
        if table:
            parts = line.split()
            if len(parts) >= 2:
                try:
                    score = float(parts[0])
                except ValueError:
                    if line.strip() == "":
                        table = False
                    continue
                fired.append((parts[1], score))
            elif not line.strip():
                table = False
    return fired
