"""What `[sending] chunk` costs and buys: for each chunk size, `dripper run` daemons killed
with SIGKILL at seeded random moments while 2,000 thank-yous go out through the
fault-injecting SMTP server of the tests (a slow reply to the final dot now and then, so
kills land mid-DATA too), then a last daemon finishes. Counted: sends recorded as
ambiguous (the daemon died between opening the attempt and recording its outcome), and
how many of those the server really accepted twice. Every email is still sent at least
once and, if not ambiguous, exactly once (the same check as tests/delivery/test_daemon.py).

    .venv/bin/python bench/chunk.py [--chunks 1 2 4 8] [--emails 2000] [--kills 6] [--seeds 2]

Throughput per chunk size: bench/send.py --chunk N (in the same sitting).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(chunk: int, emails: int, kills: int, seed: int) -> dict[str, int]:
    from tests.delivery.test_daemon import (
        ambiguous_ids,
        buy,
        daemon,
        kill_at_random,
        make_project,
        stop,
        thank_yous,
        wait_until_all_sent,
    )
    from tests.support.smtpserver import Fault, FaultyServer

    with (
        tempfile.TemporaryDirectory(prefix="dripper-bench-chunk-") as tmp,
        FaultyServer(faults=[Fault("DOT", delay=0.02)]) as server,
    ):
        config = make_project(Path(tmp) / "shop", f"sqlite:///{Path(tmp) / 'shop.db'}", server)
        text = config.read_text()
        assert "\nchunk = 4 " in text
        config.write_text(text.replace("\nchunk = 4 ", f"\nchunk = {chunk} "))
        store = buy(config, emails)
        done = kill_at_random(config, store, random.Random(seed), kills)
        final = daemon(config)
        wait_until_all_sent(store, time.monotonic() + 300)
        stop(final)
        rows = thank_yous(store)
        ambiguous = ambiguous_ids(store)
        twice = 0
        for r in rows:
            seen = server.accepted[r.message_id]
            assert seen >= 1
            if r.id not in ambiguous:
                assert seen == 1, "sent twice without being ambiguous"
            elif seen > 1:
                twice += 1
        store.close()
    return {"kills": done, "ambiguous": len(ambiguous), "delivered_twice": twice}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    for chunk in args.chunks:
        for seed in range(args.seeds):
            found = one(chunk, args.emails, args.kills, seed)
            print(json.dumps({"chunk": chunk, "seed": seed, **found}), flush=True)


if __name__ == "__main__":
    main()
