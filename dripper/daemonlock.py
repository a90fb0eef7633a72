"""One daemon per SQLite file (DESIGN 7): an OS lock beside the database.

SQLite cannot share an outbox between processes safely (SQLAlchemy silently drops SKIP
LOCKED there), so the second `dripper run` on a file refuses to start. The lock is an
advisory `flock` on `<database>.lock`: the kernel releases it when the process dies, even
by SIGKILL, so a crashed daemon never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from dripper.errors import DripperError


class AlreadyRunning(DripperError):
    exit_code = 2


class DaemonLock:
    def __init__(self, database: Path) -> None:
        # The real file, not the name it was reached by: a symlink to the database must
        # meet the same lock.
        database = database.resolve()
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 100, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AlreadyRunning(
                f"another dripper daemon ({holder}) is using {self.path.with_suffix('')}: "
                "SQLite allows one daemon per database file (use PostgreSQL to run several)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
