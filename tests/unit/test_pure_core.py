"""The pure core stays pure: the campaign model, timing, planning decisions and the delivery
policy import no database, SMTP, HTTP or IMAP library, and never read the clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dripper.engine

CORE = Path(dripper.engine.__file__).parent
ENGINE = sorted(path.stem for path in CORE.glob("*.py") if path.stem != "__init__")
CORE_MODULES = [
    *(f"dripper.engine.{name}" for name in ENGINE),
    "dripper.campaigns",
    "dripper.campaigns.samplecheck",
    "dripper.eventdata",
]
# What doing I/O would take: none of these may be loaded by importing the core.
IO_LIBRARIES = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "sqlite3",
    "aiosmtplib",
    "smtplib",
    "starlette",
    "uvicorn",
    "httpx",
    "urllib.request",
    "http.client",
    "imapclient",
    "imaplib",
    "dripper.store",
    "dripper.transport.smtp",
    "dripper.services",
)
CLOCK_READS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "monotonic"),
}


def test_the_core_imports_no_io_library() -> None:
    """Importing every core module in a fresh interpreter loads none of the I/O stacks."""
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_core_never_reads_the_clock() -> None:
    """No `datetime.now()`, `date.today()` or `time.time()` in the core: `now` is passed in."""
    found = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and (node.func.value.id, node.func.attr) in CLOCK_READS
            ):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []
