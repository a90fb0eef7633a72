"""The in-memory year of `dripper check` (engine/simulation.py) gives the timeline the real
planner and sender give on a SQLite database (`dripper.simulate`), email for email: the
shipped project, and projects with quiet hours, a frequency cap, a `when` trigger that
reads `now`, a newsletter that runs out of editions and a sample who did not opt in."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.customers.csvio import read_customers_csv
from dripper.engine.simulation import Simulation
from dripper.simulate import simulate_samples

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
NOW = datetime(2027, 3, 26, 15, 0, tzinfo=UTC)  # two days before Europe's clocks go forward

LAPSED = """
description: Miss you, 40 days after a purchase (reads now, so scanned every pass).
trigger: {when: "customer.purchases >= 1 and (now - customer.last_purchase_at).days >= 40"}
steps:
  - {id: miss-you, send_at: "09:30", subject: "We miss you", template: vip.mjml}
"""


def project(tmp_path: Path, *, settings: dict[str, str] | None = None) -> Path:
    """The scaffold in `tmp_path`, with `[sending]` keys set to `settings`."""
    root = tmp_path / "shop"
    shutil.copytree(SCAFFOLD, root)
    path = root / "config.toml"
    text = path.read_text()
    for key, value in (settings or {}).items():
        start = text.index(f"\n{key} = ") + 1
        end = text.index("\n", start)
        text = text[:start] + f"{key} = {value}" + text[end:]
    path.write_text(text, encoding="utf-8")
    return root


def timelines(
    root: Path, days: int, *, now: datetime = NOW
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The real runner's timeline and the simulation's, each sample buying at `now`."""
    config = load_config(root / "config.toml")
    campaigns, problems = load_campaigns(config.campaigns_dir, config.templates_dir)
    assert not problems, problems
    rows = list(read_customers_csv(config.samples_path).rows)
    real = asyncio.run(
        simulate_samples(config, campaigns, rows, now=now, days=days, warnings=[])
    )
    simulation = Simulation(config, campaigns)
    simulation.add_customers(rows, now=now)
    for row in rows:
        simulation.purchase(row.email, at=now, amount=Decimal("24.50"), now=now)
    mine = simulation.timeline(now, days)
    return (
        [(s.at, s.to, s.campaign, s.step) for s in real],
        [(s.at, s.to, s.campaign, s.step) for s in mine],
    )


def test_the_shipped_project_over_a_year(tmp_path: Path) -> None:
    """The scaffold's six campaigns and seven samples: the same 80-odd emails, same times."""
    real, mine = timelines(project(tmp_path), 365)
    assert len(real) > 50
    assert mine == real


@pytest.mark.parametrize(
    "sending",
    [
        {"quiet_hours": '["20:00", "09:00"]'},
        {"max_per_customer": '"1/3d"', "timezone": '"America/Chicago"'},
    ],
    ids=["quiet-hours", "cap"],
)
def test_quiet_hours_and_a_cap_defer_alike(tmp_path: Path, sending: dict[str, str]) -> None:
    """Quiet hours and the frequency cap defer sends to the same moments in both."""
    real, mine = timelines(project(tmp_path, settings=sending), 120)
    assert mine == real


def test_a_trigger_that_reads_now_and_a_sample_who_did_not_opt_in(tmp_path: Path) -> None:
    """A `when` that reads `now` enrolls on the same pass; a sample with marketing
    `not_subscribed` gets the transactional thank-you only; a newsletter out of editions
    skips its runs, in both."""
    root = project(tmp_path)
    (root / "campaigns" / "lapsed.yaml").write_text(LAPSED, encoding="utf-8")
    for edition in sorted((root / "campaigns" / "newsletters").glob("*.md"))[1:]:
        edition.unlink()
    samples = root / "customers.csv"
    lines = samples.read_text().splitlines()
    # Ada (the first) stays subscribed; Grace (the second) did not opt in.
    samples.write_text(
        "\n".join(
            [lines[0] + ",marketing", f"{lines[1]},", f"{lines[2]},not_subscribed", *lines[3:]]
        )
        + "\n"
    )
    real, mine = timelines(root, 150)
    assert any(c == "lapsed" for _, _, c, _ in real)
    grace = [(c, step) for _, to, c, step in real if to == "grace@example.com"]
    assert grace == [("welcome", "thank-you")]  # transactional only: she did not opt in
    assert mine == real


DRIFTING = """
description: Each time a customer drifts (days 40-59 of every 60 since their purchase).
trigger:
  when: "customer.purchases >= 1 and (now - customer.last_purchase_at).days % 60 >= 40"
  repeat: true
steps:
  - {id: come-back, send_at: "10:00", subject: "Come back", template: vip.mjml}
"""


def test_a_repeating_when_in_both(tmp_path: Path) -> None:
    """`repeat: true` enrolls anew each time the trigger starts to hold again, on the same
    passes in the runner and in memory (three drifts in 190 days, per customer)."""
    root = project(tmp_path)
    (root / "campaigns" / "drifting.yaml").write_text(DRIFTING, encoding="utf-8")
    real, mine = timelines(root, 190)
    per_customer = [to for _, to, c, _ in real if c == "drifting"]
    assert per_customer.count("ada@example.com") == 3
    assert mine == real
