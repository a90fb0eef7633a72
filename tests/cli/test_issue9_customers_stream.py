"""`dripper customers import` and `export` as real processes: memory that does not grow
with the file, and an export into a pipe its reader closed early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Project

DRIPPER = str(Path(sys.executable).parent / "dripper")


# Run by a fresh small interpreter: a child's ru_maxrss counts its parent's memory at the
# fork (Linux keeps the high-water mark across exec), and pytest's own grows test by test.
_MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run(args: list[str], cwd: Path) -> tuple[int, float, str]:
    """Exit code, peak RSS in MB and stderr of one dripper process."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, DRIPPER, *args], cwd=cwd, capture_output=True, text=True
    )
    return done.returncode, int(done.stdout) / 1024, done.stderr  # ru_maxrss is in KiB


def _sqlite_project(root: Path) -> Path:
    config = root / "config.toml"
    config.write_text('[database]\nurl = "sqlite:///dripper.db"\n')
    return config


def test_import_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Importing 10,000 rows of 8 KB (80 MB, written in batches, then refused by a bad
    last row) takes about the memory of importing 1 row: rows are never all held."""
    config = _sqlite_project(tmp_path)
    note = "n" * 8_000
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_text(f"email,note\nc0@example.com,{note}\nbad,x\n")
    with large.open("w") as out:
        out.write("email,note\n")
        for i in range(10_000):
            out.write(f"c{i}@example.com,{note}\n")
        out.write("bad,x\n")
    base_code, base_rss, _ = _run(
        ["--config", str(config), "customers", "import", str(small)], tmp_path
    )
    code, rss, stderr = _run(["--config", str(config), "customers", "import", str(large)], tmp_path)
    assert rss - base_rss < 30, (base_rss, rss)
    assert (base_code, code) == (2, 2), stderr
    assert "large.csv:10002: invalid email address 'bad'" in stderr


def test_import_of_a_huge_line_stays_bounded(tmp_path: Path) -> None:
    """A 128 MiB line without a line break is skipped in blocks, never read whole: the
    import takes about the memory of a one-row file and names the line."""
    config = _sqlite_project(tmp_path)
    small, huge = tmp_path / "small.csv", tmp_path / "huge.csv"
    small.write_text("email,note\nc0@example.com,x\n")
    with huge.open("wb") as out:
        out.write(b"email,note\nc0@example.com,x\nc1@example.com,")
        block = b"x" * (1 << 20)
        for _ in range(128):
            out.write(block)
        out.write(b"\nc2@example.com,y\n")
    base_code, base_rss, _ = _run(
        ["--config", str(config), "customers", "import", str(small)], tmp_path
    )
    code, rss, stderr = _run(["--config", str(config), "customers", "import", str(huge)], tmp_path)
    assert rss - base_rss < 30, (base_rss, rss)
    assert (base_code, code) == (0, 2), stderr
    assert "huge.csv:3: a line of more than 1 MiB" in stderr


def test_export_into_a_pipe_closed_early_exits_quietly(project: Project) -> None:
    """`dripper customers export | head -2` with thousands of customers (the pipe fills,
    then its reader leaves): exit 0 and nothing on stderr, as Unix tools do."""
    project.write(
        "many.csv",
        "email,first_name,city\n"
        + "".join(f"c{i}@example.com,Customer {i},City {i}\n" for i in range(3_000)),
    )
    imported = project.run("customers", "import", "many.csv")
    assert imported.exit_code == 0, imported.output
    proc = subprocess.Popen(
        [DRIPPER, "--config", str(project.root / "config.toml"), "customers", "export"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    head = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()  # what `head -2` does once it has its lines
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, stderr
    assert head[0].startswith(b"email,first_name,")
    assert head[1].startswith(b"c0@example.com,Customer 0,")
    assert stderr == ""
