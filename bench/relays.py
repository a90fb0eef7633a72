"""Apple's relay ranges (`[tracking] apple_relay_ranges`): what reading the list costs
`serve` and its hit writer at start, and what asking it costs per open.

    .venv/bin/python bench/relays.py [--prefixes 300000] [--lookups 200000]

The list is made in the shape of Apple's egress-ip-ranges.csv (`prefix,country,region,
city,`; about two thirds IPv4 /27-/32, one third IPv6 /64), written to a temporary file
and read with `dripper.services.hits.load_relay_ranges`, as `serve` reads it. Then
lookups of distinct addresses: one inside each seventh prefix, and random ones of which
nearly all are outside (the cache in front of the search sees each once: the worst case).
Prints seconds, microseconds per lookup, and the memory the parsed list holds
(tracemalloc, on a second load).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dripper.services.hits import load_relay_ranges


def apple_like(count: int, rng: random.Random) -> tuple[str, list[str]]:
    """The CSV text, and one address inside each of a sample of its prefixes."""
    lines = []
    inside = []
    for i in range(count):
        network: ipaddress.IPv4Network | ipaddress.IPv6Network
        if i % 3 == 2:
            base = ipaddress.IPv6Address(0x2A02_26F7_0000_0000 << 64 | rng.getrandbits(32) << 64)
            network = ipaddress.IPv6Network(f"{base}/64", strict=False)
        else:
            length = rng.choice((27, 28, 29, 31, 32))
            base4 = ipaddress.IPv4Address(rng.randrange(0x68000000, 0xAC000000))
            network = ipaddress.IPv4Network(f"{base4}/{length}", strict=False)
        lines.append(f"{network},GB,GB-EN,London,")
        if i % 7 == 0:
            inside.append(str(network.network_address + (network.num_addresses > 1)))
    return "\n".join(lines) + "\n", inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=300_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(11)
    text, inside = apple_like(args.prefixes, rng)
    fd, name = tempfile.mkstemp(prefix="bench-relays-", suffix=".csv")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        start = time.perf_counter()
        ranges = load_relay_ranges(name)
        load_seconds = time.perf_counter() - start
        # Then the memory, on a second load: tracing slows allocation several times over.
        del ranges
        tracemalloc.start()
        ranges = load_relay_ranges(name)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    finally:
        os.unlink(name)
    outside = [str(ipaddress.IPv4Address(rng.randrange(0x0B000000, 0x60000000)))
               for _ in range(args.lookups // 2)]  # fmt: skip
    asked = (inside * (args.lookups // 2 // max(len(inside), 1) + 1))[: args.lookups // 2]
    # Distinct addresses: each a cache miss (a suffix the search ignores would not be).
    addresses = list(dict.fromkeys(asked + outside))
    start = time.perf_counter()
    found = sum(1 for ip in addresses if ip in ranges)
    per_lookup = (time.perf_counter() - start) / len(addresses)
    print(json.dumps({
        "prefixes": ranges.count,
        "file_mb": round(len(text) / 1e6, 1),
        "load_seconds": round(load_seconds, 2),
        "us_per_line": round(load_seconds / ranges.count * 1e6, 2),
        "memory_mb": round(held / 1e6, 1),
        "lookups": len(addresses),
        "found": found,
        "us_per_lookup": round(per_lookup * 1e6, 2),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
