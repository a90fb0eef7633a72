"""Fuzzing the command line's inputs (hypothesis): event `--data` JSON and `--at`, CSV
cells, campaign YAML scalars and durations, config values. Whatever comes in, dripper
answers with a result or one clear line (exit 0, 1 or 2), never "internal error" and never
a traceback."""

from __future__ import annotations

import csv
import io
import json
import os
import string
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dripper.cli import cli

# A quick pass in CI; DRIPPER_FUZZ_EXAMPLES=1000 for a long one.
FUZZ = settings(
    max_examples=int(os.environ.get("DRIPPER_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any code point, surrogates and control characters included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | ANY_TEXT
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


class Shop:
    """A scaffolded project on SQLite, driven like a user would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runner = CliRunner()

    def run(self, *args: str) -> Result:
        return self.runner.invoke(cli, ["--config", str(self.root / "config.toml"), *args])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("fuzz")
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    return Shop(root)


def assert_handled(result: Result) -> None:
    """Exit 0, 1 or 2 with no internal error: the one promise every input gets."""
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "internal error" not in result.output, result.output
    assert "Traceback" not in result.output, result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)  # escapes keep surrogates in the JSON text


@FUZZ
@given(data=st.dictionaries(ANY_TEXT, JSON, max_size=5), amount=JSON)
def test_event_data_json(shop: Shop, data: dict[str, object], amount: object) -> None:
    """Any JSON object as `--data`, with any `amount`, on a purchase."""
    text = _dumps({**data, "amount": amount})
    assert_handled(shop.run("--now", "2027-01-04T15:00:00Z", "event", "purchase",
                            "fuzz@example.com", "--data", text))


@FUZZ
@given(text=st.text(max_size=60), at=st.text(max_size=40))
def test_event_raw_data_and_at(shop: Shop, text: str, at: str) -> None:
    """Any text as `--data` and `--at`."""
    assert_handled(shop.run("event", "signup", "fuzz@example.com", "--data", text, "--at", at))


@FUZZ
@given(moment=st.datetimes(), zone=st.sampled_from(["Z", "+14:00", "-12:00", ""]))
def test_event_at_any_moment(shop: Shop, moment: object, zone: str) -> None:
    """Any calendar moment from year 1 to 9999 as `--at` and `--now`."""
    text = f"{moment.isoformat()}{zone}"  # type: ignore[attr-defined]
    assert_handled(shop.run("--now", text, "event", "purchase", "fuzz@example.com", "--at", text))


@FUZZ
@given(kind=st.text(max_size=30), email=st.text(max_size=60) | st.emails())
def test_event_type_and_address(shop: Shop, kind: str, email: str) -> None:
    """Any event type and address."""
    assert_handled(shop.run("event", kind, email))


CELL = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@FUZZ
@given(
    extra=st.lists(st.text(string.ascii_letters + "_ -", min_size=1, max_size=12), max_size=3),
    rows=st.lists(st.lists(CELL, min_size=1, max_size=8), min_size=1, max_size=5),
)
def test_csv_cells(shop: Shop, extra: list[str], rows: list[list[str]]) -> None:
    """A CSV with any cells (NUL, line breaks, quotes, huge values) under real and odd
    columns imports or is refused by line."""
    header = ["email", "first_name", "last_name", "timezone", "locale", "tags", "birthday", *extra]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for i, row in enumerate(rows):
        writer.writerow([f"row{i}@example.com", *row])
    path = shop.root / "fuzz.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    assert_handled(shop.run("customers", "import", str(path)))
    assert_handled(shop.run("customers", "add", "added@example.com", "--first-name",
                            rows[0][0], "--attr", f"note={rows[0][-1]}"))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_csv_bytes(shop: Shop, raw: bytes) -> None:
    """Any bytes as a CSV file."""
    path = shop.root / "bytes.csv"
    path.write_bytes(b"email,first_name\n" + raw)
    assert_handled(shop.run("customers", "import", str(path)))


YAML_SCALAR = (
    ANY_TEXT.map(_dumps)  # a double-quoted YAML scalar with escapes (JSON is YAML)
    | st.text(max_size=20)
    | st.integers().map(str)
    | st.from_regex(r"\d{1,30}[smhdwy]?", fullmatch=True)
)


@FUZZ
@given(after=YAML_SCALAR, send_at=YAML_SCALAR, subject=YAML_SCALAR, condition=YAML_SCALAR)
def test_campaign_scalars(
    shop: Shop, after: str, send_at: str, subject: str, condition: str
) -> None:
    """Any value for a step's `after`, `send_at`, `subject` and `if`: `check` reports it,
    and an event with that campaign present is recorded or refused cleanly."""
    text = (
        "trigger: {event: purchase}\nsteps:\n  - id: fuzz\n"
        f"    after: {after}\n    send_at: {send_at}\n    subject: {subject}\n"
        f"    if: {condition}\n    template: thank-you.mjml\n"
    )
    path = shop.root / "campaigns" / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        assert_handled(shop.run("check"))
        assert_handled(shop.run("event", "purchase", "yaml@example.com"))
    finally:
        path.unlink()


@FUZZ
@given(text=st.text(max_size=300))
def test_campaign_file_text(shop: Shop, text: str) -> None:
    """Any text as a whole campaign file."""
    path = shop.root / "campaigns" / "anything.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        assert_handled(shop.run("check"))
    finally:
        path.unlink()


CONFIG_VALUE = (
    ANY_TEXT.map(_dumps)
    | st.integers(min_value=-(10**20), max_value=10**20).map(str)
    | st.floats().map(lambda f: json.dumps(f) if f == f and abs(f) != float("inf") else "nan")
    | st.lists(st.text(max_size=8), max_size=3).map(_dumps)
    | st.sampled_from(["true", "{}", "[]", '"6w"', '"1/2d"', '["21:00", "08:00"]'])
)
CONFIG_KEYS = [
    ("sending", "max_per_customer"),
    ("sending", "quiet_hours"),
    ("sending", "retry"),
    ("sending", "lease"),
    ("sending", "timezone"),
    ("sending", "batch_size"),
    ("sending", "chunk"),
    ("transport", "port"),
    ("transport", "security"),
    ("tracking", "base_url"),
    ("database", "url"),
    ("project", "campaigns"),
]


@FUZZ
@given(key=st.sampled_from(CONFIG_KEYS), value=CONFIG_VALUE)
def test_config_values(shop: Shop, key: tuple[str, str], value: str) -> None:
    """Any value for a config key: `check` and `run --dry-run` report it in one line."""
    section, name = key
    config = shop.root / "fuzz.toml"
    text = f"[{section}]\n{name} = {value}\n"
    config.write_text(text, encoding="utf-8", errors="surrogateescape")
    for command in (["check"], ["run", "--dry-run"]):
        result = shop.runner.invoke(cli, ["--config", str(config), *command])
        assert_handled(result)
