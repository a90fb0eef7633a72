"""`dripper init`, `check`, global options and error handling (no database needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripper.cli import cli

BROKEN = Path(__file__).resolve().parents[1] / "data" / "campaigns" / "broken"


def test_init_then_check_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A freshly scaffolded project checks with no problems and exit 0."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["init", "shop"]).exit_code == 0
    for name in (
        "config.toml",
        "customers.csv",
        "campaigns/welcome.yaml",
        "campaigns/value-newsletter.yaml",
        "campaigns/referral-request.yaml",
        "campaigns/birthday.yaml",
        "campaigns/feedback-follow-up.yaml",
        "campaigns/vip.yaml",
        "templates/layout.mjml",
    ):
        assert (tmp_path / "shop" / name).is_file(), name
    result = runner.invoke(cli, ["--config", "shop/config.toml", "check"])
    assert result.exit_code == 0, result.output
    assert "11 campaign(s)" in result.stdout
    assert "no problems" in result.stdout
    assert "cadence" not in result.stderr  # the shipped campaigns keep in touch all year


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """A second init into the same folder writes nothing and exits 2 unless --force."""
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path)]).exit_code == 0
    (tmp_path / "campaigns" / "welcome.yaml").write_text("# mine\n")
    result = runner.invoke(cli, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exist; nothing written" in result.stderr
    assert (tmp_path / "campaigns" / "welcome.yaml").read_text() == "# mine\n"
    assert runner.invoke(cli, ["init", str(tmp_path), "--force"]).exit_code == 0
    assert (tmp_path / "campaigns" / "welcome.yaml").read_text() != "# mine\n"


def test_check_reports_broken_campaigns_one_line_each(tmp_path: Path) -> None:
    """check on a broken folder prints file:line problems and exits 1, never a traceback."""
    runner = CliRunner()
    runner.invoke(cli, ["init", str(tmp_path)])
    config = tmp_path / "config.toml"
    config.write_text(
        config.read_text().replace('campaigns = "campaigns"', f'campaigns = "{BROKEN}"')
    )
    result = runner.invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) >= 10
    for line in lines[:-1]:
        assert ".yaml:" in line or ".yml:" in line or ".md:" in line, line
    as_json = runner.invoke(cli, ["--config", str(config), "check", "--json"])
    assert as_json.exit_code == 1
    assert '"problems"' in as_json.stdout


def test_config_option_on_every_command(tmp_path: Path) -> None:
    """--config works after the command name as well as on the group."""
    runner = CliRunner()
    runner.invoke(cli, ["init", str(tmp_path)])
    result = runner.invoke(cli, ["check", "--config", str(tmp_path / "config.toml")])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(cli, ["check", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2
    assert "no such config file" in missing.stderr


def test_bad_config_is_reported_by_file_and_line(tmp_path: Path) -> None:
    """An unknown key in config.toml is one line with file:line and exit 2."""
    config = tmp_path / "config.toml"
    config.write_text("[transport]\nkindd = 'file'\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 2
    assert f"{config}:2: [transport] kindd: unknown key (did you mean 'kind'?)" in result.stderr


def test_bad_now_is_a_usage_error(tmp_path: Path) -> None:
    """--now that is not ISO 8601 exits 2 with the accepted form."""
    result = CliRunner().invoke(cli, ["--now", "yesterday", "check"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


def test_help_and_check_do_not_load_heavy_stacks() -> None:
    """`dripper --help` and `dripper check` never import the database or SMTP stacks."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from dripper.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('sqlalchemy', 'alembic', 'aiosmtplib', 'dkim', 'psycopg')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
