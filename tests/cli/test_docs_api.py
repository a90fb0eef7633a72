"""The Python example for many events (docs/customers.md) runs as written, on both databases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Project

README = Path(__file__).resolve().parents[2] / "docs" / "customers.md"


def test_the_docs_bulk_events_example_runs(project: Project) -> None:
    """The Python API example of docs/customers.md runs as written and records the event."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index("Many events at once") :]
    found = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert found is not None
    (project.root / "backfill.py").write_text(found.group(1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "backfill.py"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 enrolled, 0 sent, 1 recorded"
    shown = project.run("customers", "show", "ada@example.com")
    assert shown.exit_code == 0, shown.output
    assert "purchases              1 (total spent 24.50)" in shown.output
    assert "welcome / second-sale" in shown.output
