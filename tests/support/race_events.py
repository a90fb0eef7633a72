"""One racer of `tests/integration/test_event_races.py`: records the same events as the
other racer, each in a transaction of its own, starting when the start file appears.

    python -m tests.support.race_events DB_URL START_FILE COUNT
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dripper.campaigns import load_campaigns
from dripper.config import load_config
from dripper.services.planning import Planner
from dripper.store import open_store

SCAFFOLD = Path(__file__).resolve().parents[2] / "dripper" / "scaffold"
T0 = datetime(2027, 1, 4, 15, 0, tzinfo=UTC)


def main(url: str, start: Path, count: int) -> int:
    config = load_config(SCAFFOLD / "config.toml")
    campaigns, _ = load_campaigns(SCAFFOLD / "campaigns", SCAFFOLD / "templates")
    store = open_store(url)
    planner = Planner(config, store, campaigns)
    while not start.exists():
        time.sleep(0.005)
    recorded = 0
    for i in range(count):
        done = planner.record_event(
            f"racer{i % 7}@example.com",
            "purchase",
            at=T0,
            data={"amount": "2.50"},
            now=T0,
            ext_id=f"shopify:order:{i}",
        )
        recorded += done is not None
    store.close()
    print(recorded)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
