"""A scaffolded project on each database, and a way to run the CLI in it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dripper.cli import cli


@dataclass
class Project:
    root: Path
    runner: CliRunner

    def run(self, *args: str, input: str | None = None) -> Result:
        """Run `dripper ARGS` in the project folder, as a user would."""
        return self.runner.invoke(
            cli, ["--config", str(self.root / "config.toml"), *args], input=input
        )

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
def project(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Project:
    """`dripper init` in a fresh folder, pointed at an empty database of each kind."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["init", "."])
    assert result.exit_code == 0, result.output
    config = tmp_path / "config.toml"
    text = config.read_text().replace('url = "sqlite:///dripper.db"', f'url = "{db_url}"')
    config.write_text(text)
    return Project(tmp_path, runner)
