"""`dripper check` simulates the next year for the sample customers (as if each bought
today) and warns when the campaigns would leave someone without an email for longer than
`[project] cadence`; the shipped campaigns do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dripper.cli import cli

NOW = "2027-01-01T08:00:00Z"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    assert CliRunner().invoke(cli, ["init", str(folder)]).exit_code == 0
    return folder


def check(root: Path) -> Result:
    return CliRunner().invoke(cli, ["--config", str(root / "config.toml"), "--now", NOW, "check"])


def test_the_shipped_campaigns_keep_in_touch_all_year(root: Path) -> None:
    """Nine newsletter editions every six weeks, the welcome sequence and birthdays: no
    sample customer waits longer than six weeks in the simulated year."""
    result = check(root)
    assert result.exit_code == 0, result.output
    assert "cadence" not in result.stderr


def test_a_newsletter_out_of_editions_is_a_silence(root: Path) -> None:
    """With one edition left the newsletter stops after its first run: a warning names the
    longest silences with their dates, how many customers have one, and the likely cause;
    a warning, not a problem (exit 0)."""
    for edition in sorted((root / "campaigns" / "newsletters").glob("*.md"))[1:]:
        edition.unlink()
    result = check(root)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "cadence" in line]
    assert len(lines) == 2, result.stderr
    assert "7 of 7 would hear nothing for longer than 6w ([project] cadence)" in lines[0]
    assert "to 2028-01-01" in lines[0]  # silent until the end of the simulated year
    assert "and 4 more" in lines[0]
    assert "no edition left" in lines[1]


def test_the_cadence_is_the_projects_to_choose(root: Path) -> None:
    """A shop content with one email a year (cadence 52w) is not warned."""
    for edition in sorted((root / "campaigns" / "newsletters").glob("*.md"))[1:]:
        edition.unlink()
    config = root / "config.toml"
    config.write_text(config.read_text().replace('cadence = "6w"', 'cadence = "52w"'))
    result = check(root)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "cadence" in line]
    assert lines == []
