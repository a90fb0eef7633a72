"""Editing while the daemon runs (DESIGN 14): the campaign and template files are looked at
before each pass, and a change is taken as **one version**: the campaigns loaded and every
template they use compiled together, then switched to at once. Every email is rendered from
the campaign and templates of one version, never the old subject with the new body. A
folder with errors keeps the last good version running and says what is wrong once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dripper.campaigns import Campaign
    from dripper.config import Config
    from dripper.render.renderer import Renderer

log = logging.getLogger("dripper.run")

MAX_FILES = 20_000  # a project folder this big is a mistake (a node_modules copied in?)
FROZEN = float("inf")  # a version's templates are never looked at again
MOVING = "the files changed while they were read"


Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(*folders: Path) -> Fingerprint:
    """Every file under the folders, by path, modification time and size: what changed."""
    found: list[tuple[str, int, int]] = []
    stack = [str(folder) for folder in folders]
    while stack and len(found) < MAX_FILES:
        top = stack.pop()
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                else:
                    info = entry.stat()
                    found.append((entry.path, info.st_mtime_ns, info.st_size))
            except OSError:
                continue
    return tuple(sorted(found))


@dataclass(frozen=True)
class Version:
    """One consistent project: campaigns and a renderer whose templates are all compiled."""

    campaigns: tuple[Campaign, ...]
    renderer: Renderer
    files: Fingerprint


def load_version(config: Config) -> Version | list[str]:
    """The project as its files are now, or the problems that keep it from running. The
    files are fingerprinted before and after: a change while loading is no version."""
    from dripper.campaigns import load_campaigns
    from dripper.errors import DripperError
    from dripper.render.renderer import Renderer

    before = fingerprint(config.campaigns_dir, config.templates_dir)
    campaigns, problems = load_campaigns(
        config.campaigns_dir, config.templates_dir, display_base=Path.cwd()
    )
    if not problems:  # an assignee or a webhook host config.toml does not know (DESIGN 16)
        from dripper.campaigns.personal import personal_problems

        problems = personal_problems(campaigns, config.tasks, config.webhooks)
    if problems:
        return [str(p) for p in problems]
    renderer = Renderer(config, recheck_seconds=FROZEN)
    found: list[str] = []
    for template in sorted({s.template for c in campaigns for s in c.steps if not s.personal}):
        try:
            renderer.template(template)
        except DripperError as exc:
            found.append(str(exc))
    if found:
        return found
    if fingerprint(config.campaigns_dir, config.templates_dir) != before:
        return [MOVING]
    return Version(tuple(campaigns), renderer, before)


class Watcher:
    """The daemon's view of its project's files: `changed()` gives a new good version when
    the files changed into one; a broken change is logged once and skipped."""

    def __init__(self, config: Config, current: Version) -> None:
        self.config = config
        self.current = current
        self._seen = current.files  # the files last looked at (good or broken)

    def changed(self) -> Version | None:
        files = fingerprint(self.config.campaigns_dir, self.config.templates_dir)
        if files == self._seen:
            return None
        loaded = load_version(self.config)
        if loaded == [MOVING]:
            return None  # still being written: looked at again next pass
        if isinstance(loaded, Version):
            self.current = loaded
            self._seen = loaded.files
            log.info("campaigns and templates reloaded: %d campaign(s)", len(loaded.campaigns))
            return loaded
        self._seen = files  # logged once for these files; a later edit is looked at again
        log.error(
            "the campaign folder has problems: still running the last good version (%s)",
            _listed(loaded),
        )
        return None


def _listed(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:5])
    return shown + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
