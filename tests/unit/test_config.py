"""config.toml loading: defaults, types, unknown keys, line numbers, secrets."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from dripper.config import find_config, load_config
from dripper.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads_with_documented_defaults() -> None:
    """The shipped example is valid and its values match the loader's defaults."""
    config = load_config(EXAMPLE)
    assert config.transport.kind == "file"
    assert config.tracking.opens is True
    assert config.quiet_hours is None
    assert config.max_per_customer is None
    assert config.timezone == "UTC"
    assert config.company["postal_address"].startswith("1 Roastery Lane")


def test_example_documents_every_key() -> None:
    """Every key of the schema appears in config.example.toml."""
    from dripper.config import SCHEMA

    text = EXAMPLE.read_text()
    for section, keys in SCHEMA.items():
        assert f"[{section}]" in text
        for key in keys:
            if (section, key) == ("signup", "forms"):  # a table per form
                assert "[signup.forms.default]" in text
                continue
            assert f"\n{key} =" in text, f"[{section}] {key} is not documented"


def test_no_config_gives_defaults_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without config.toml every default applies and paths are relative to the cwd."""
    monkeypatch.chdir(tmp_path)
    assert find_config(None) is None
    config = load_config(None)
    assert config.campaigns_dir == tmp_path / "campaigns"
    assert config.database_url == f"sqlite:///{tmp_path}/dripper.db"


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """A relative SQLite file and folders resolve beside config.toml, not the cwd."""
    sub = tmp_path / "proj"
    sub.mkdir()
    config = load_config(write(sub, '[project]\ncampaigns = "c"\n[transport]\npath = "out"\n'))
    assert config.campaigns_dir == sub / "c"
    assert config.transport.path == sub / "out"
    assert config.database_url == f"sqlite:///{sub}/dripper.db"


def test_values_are_parsed(tmp_path: Path) -> None:
    """Quiet hours, the frequency cap and the time zone become typed values."""
    config = load_config(
        write(
            tmp_path,
            '[sending]\ntimezone = "Europe/Berlin"\nquiet_hours = ["21:00", "08:00"]\n'
            'max_per_customer = "1/2d"\n',
        )
    )
    assert config.quiet_hours == (time(21), time(8))
    assert config.max_per_customer is not None
    assert config.max_per_customer.count == 1
    assert config.max_per_customer.period == timedelta(days=2)


def test_every_problem_is_reported_with_line_and_key(tmp_path: Path) -> None:
    """Unknown sections and keys and wrong types are all listed, each with file:line."""
    path = write(
        tmp_path,
        "[transport]\n"
        'kind = "smtp"\n'
        "prot = 25\n"
        'port = "25"\n'
        "[sending]\n"
        'quiet_hours = ["9pm", "08:00"]\n'
        'timezone = "Mars/Olympus"\n'
        "[trackin]\n"
        "opens = true\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert f"{path}:3: [transport] prot: unknown key (did you mean 'port'?)" in lines
    assert any(
        line.startswith(f"{path}:4: [transport] port: expected a whole number") for line in lines
    )
    assert any(
        line.startswith(f"{path}:6: [sending] quiet_hours: bad time of day") for line in lines
    )
    assert any(
        line.startswith(f"{path}:7: [sending] timezone: unknown time zone") for line in lines
    )
    assert f"{path}:8: [trackin]: unknown section (did you mean 'tracking'?)" in lines
    assert len(lines) == 5


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A TOML syntax error is one line with the file and line number."""
    path = write(tmp_path, "[project]\ncampaigns = \n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: not valid TOML"):
        load_config(path)


def test_secrets_are_names_of_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `*_env` key must name a variable; the secret is read from the environment."""
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        load_config(write(tmp_path, '[transport]\npassword_env = "hunter2 secret!"\n'))
    config = load_config(write(tmp_path, '[transport]\npassword_env = "MY_SMTP_PW"\n'))
    monkeypatch.setenv("MY_SMTP_PW", "s3cret")
    assert config.secret(config.transport.password_env) == "s3cret"
    assert "s3cret" not in repr(config)


def test_explicit_missing_config_is_an_error(tmp_path: Path) -> None:
    """--config naming a file that does not exist is a clear error."""
    with pytest.raises(ConfigError, match="no such config file"):
        find_config(tmp_path / "nope.toml")


def test_chunk_is_a_small_whole_number(tmp_path: Path) -> None:
    """`[sending] chunk` defaults to 4, takes 1-64, and anything else names its line."""
    assert load_config(write(tmp_path, "")).chunk == 4
    assert load_config(write(tmp_path, "[sending]\nchunk = 1\n")).chunk == 1
    for bad in ("0", "65", '"4"', "2.5"):
        path = write(tmp_path, f"[sending]\nchunk = {bad}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(f"{path}:2: [sending] chunk:"), str(info.value)
