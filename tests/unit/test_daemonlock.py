"""The one-daemon lock of a SQLite file holds whatever name the file is reached by."""

from __future__ import annotations

from pathlib import Path

import pytest

from dripper.daemonlock import AlreadyRunning, DaemonLock


def test_a_symlink_to_the_database_meets_the_same_lock(tmp_path: Path) -> None:
    """A second daemon pointed at a symlink of a locked database refuses to start."""
    real = tmp_path / "data" / "dripper.db"
    real.parent.mkdir()
    real.touch()
    other = tmp_path / "elsewhere"
    other.mkdir()
    link = other / "shop.db"
    link.symlink_to(real)
    with DaemonLock(real), pytest.raises(AlreadyRunning, match="one daemon per database file"):
        DaemonLock(link).acquire()
    with DaemonLock(link):  # free again once the first one is gone
        pass
