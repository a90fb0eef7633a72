"""A property of `dripper check`'s year (engine/simulation.py): on generated projects
(campaigns of every trigger kind with random delays, send times, transactional steps and
conditions; random quiet hours, caps, time zones and starting moments) the in-memory
timeline equals the one the real planner and sender give on a SQLite database
(`dripper.simulate`), email for email. Seeded: a failing seed is its own test id, and
reproduces."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.test_simulation import SCAFFOLD, timelines

SEEDS = range(12)
DELAYS = ("0", "2h", "1d", "3d", "14d")
TIMES = ('"08:00"', '"09:30"', '"18:45"', '"23:30"')
ZONES = ('"UTC"', '"America/Chicago"', '"Europe/Madrid"', '"Asia/Tokyo"')
SCAFFOLD_CAMPAIGNS = ("birthday", "feedback-follow-up", "referral-request", "vip", "welcome")


def steps(rng: random.Random, count: int) -> str:
    lines = ["steps:"]
    # In sending order (check refuses a step listed before an earlier one).
    delays = sorted(rng.choices(range(len(DELAYS)), k=count))
    for n, delay in enumerate(delays):
        lines.append(f"  - id: s{n}")
        lines.append(f"    after: {DELAYS[delay]}")
        if rng.random() < 0.5:
            lines.append(f"    send_at: {rng.choice(TIMES)}")
        if rng.random() < 0.25:
            lines.append("    transactional: true")
        if rng.random() < 0.25:
            lines.append(f"    if: customer.purchases < {rng.randint(1, 3)}")
        lines.append(f'    subject: "Step {n}"')
        lines.append("    template: vip.mjml")
    return "\n".join(lines) + "\n"


def campaign(rng: random.Random, now: datetime, kind: str | None = None) -> str:
    """One campaign of a random trigger kind (or of `kind`)."""
    kind = kind or rng.choice(["event", "event", "date", "schedule", "when"])
    if kind == "event":
        head = "trigger:\n  event: purchase\n"
        if rng.random() < 0.5:
            head += f"  if: customer.purchases == {rng.randint(1, 2)}\n"
        if rng.random() < 0.3:
            head += "goal: {event: purchase, within: 30d}\n"
    elif kind == "date":
        head = "trigger:\n  date: customer.birthday\n  annually: true\n"
    elif kind == "schedule":
        starting = (now + timedelta(days=rng.randint(0, 20))).date().isoformat()
        every = rng.choice(["1w", "2w", "10d", "6w"])
        head = f"schedule:\n  every: {every}\n  starting: {starting}\n"
    else:
        days = rng.randint(5, 40)
        head = (
            "trigger:\n  when: customer.purchases >= 1 and "
            f"(now - customer.last_purchase_at).days >= {days}\n"
        )
    return f"description: generated ({kind})\n{head}{steps(rng, rng.randint(1, 3))}"


def generated(tmp_path: Path, seed: int) -> tuple[Path, datetime]:
    """The scaffold with some of its campaigns, one to three generated ones, and random
    sending settings."""
    rng = random.Random(seed)
    now = datetime(2027, 1, 1, 9, tzinfo=UTC) + timedelta(
        days=rng.randint(0, 364), minutes=rng.randint(0, 1439)
    )
    root = tmp_path / "shop"
    shutil.copytree(SCAFFOLD, root)
    folder = root / "campaigns"
    (folder / "value-newsletter.yaml").unlink()  # editions: the fixed tests cover them
    for name in SCAFFOLD_CAMPAIGNS:
        if rng.random() < 0.5:
            (folder / f"{name}.yaml").unlink()
    for n in range(rng.randint(1, 3)):
        # The first reacts to the samples' purchase: every project sends something.
        text = campaign(rng, now, "event" if n == 0 else None)
        (folder / f"generated-{n}.yaml").write_text(text, encoding="utf-8")
    config = root / "config.toml"
    text = config.read_text()
    settings = {"timezone": rng.choice(ZONES)}
    if rng.random() < 0.4:
        settings["quiet_hours"] = rng.choice(['["20:00", "09:00"]', '["12:00", "14:00"]'])
    if rng.random() < 0.4:
        settings["max_per_customer"] = rng.choice(['"1/2d"', '"2/1w"'])
    for key, value in settings.items():
        start = text.index(f"\n{key} = ") + 1
        end = text.index("\n", start)
        text = text[:start] + f"{key} = {value}" + text[end:]
    config.write_text(text, encoding="utf-8")
    return root, now


@pytest.mark.parametrize("seed", SEEDS)
def test_a_generated_project_simulates_as_the_daemon_runs_it(tmp_path: Path, seed: int) -> None:
    """The same emails to the same people at the same moments, in memory and on SQLite."""
    root, now = generated(tmp_path, seed)
    real, mine = timelines(root, 90, now=now)
    assert real, "a generated project that sends nothing proves nothing"
    assert mine == real
