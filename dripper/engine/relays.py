"""Apple's relay addresses, as Apple publishes them: the egress ranges of iCloud Private
Relay, which the image loads of Mail Privacy Protection come through (the same front ends,
`mask.icloud.com`; Apple's network itself, 17.0.0.0/8, is known without a list).

Apple publishes the ranges as CSV, one prefix per line with where it egresses:

    172.224.226.0/27,GB,GB-EN,London,
    2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,

(`https://mask-api.icloud.com/egress-ip-ranges.csv`, a few hundred thousand lines).
`[tracking] apple_relay_ranges` names a downloaded copy; an open from one of these
addresses is a machine's (`dripper.engine.hits`). Only opens: a person browsing with
Private Relay on clicks from these addresses too.

Pure: text in, a set to ask out. The prefixes are merged into sorted intervals per address
family, so asking is two binary searches, whatever the size of the list.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
from collections.abc import Iterable

from dripper.errors import ConfigError

_CACHE_LIMIT = 65536  # a mailing's opens come from far fewer relay addresses than this


class RelayRanges:
    """A set of IPv4 and IPv6 networks: `"172.224.226.7" in ranges`."""

    def __init__(self, spans: Iterable[tuple[int, int, int]]) -> None:
        """From (version, first address, last address) as integers."""
        found: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        count = 0
        for version, start, end in spans:
            found[version].append((start, end))
            count += 1
        self.count = count  # prefixes read (before merging)
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, listed in found.items():
            merged: list[tuple[int, int]] = []
            for start, end in sorted(listed):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._starts[version] = [s for s, _ in merged]
            self._ends[version] = [e for _, e in merged]
        self._seen: dict[str, bool] = {}

    @classmethod
    def parse(cls, text: str, source: str) -> RelayRanges:
        """Apple's CSV (or any list with one prefix first on each line; `#` comments and
        blank lines are skipped). ConfigError naming `source:line` for anything else, and
        for what a download cut short leaves: a last line with fewer fields than the first,
        a prefix shorter than any relay's (/8, or /16 for IPv6: `172.224.226.0/27` cut to
        `/2` would be a quarter of the internet), or no prefix at all."""
        spans: list[tuple[int, int, int]] = []
        fields = None  # commas per line, as the first line has them
        for number, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
            field = line.split(",", 1)[0].strip()
            if not field or field.startswith("#"):
                continue
            if fields is None:
                fields = line.count(",")
            span = _span(field)
            if span is None:
                raise ConfigError(
                    f"{source}:{number}: {field[:60]!r} is not an IP prefix like "
                    "172.224.226.0/27: use Apple's egress-ip-ranges.csv as it is published"
                )
            version, start, end = span
            if end - start >= 1 << (24 if version == 4 else 112) or line.count(",") != fields:
                raise ConfigError(
                    f"{source}:{number}: {line.strip()[:60]!r} is not a line of Apple's list "
                    "(too wide a prefix, or cut short): download the list again"
                )
            spans.append(span)
        if not spans:
            raise ConfigError(
                f"{source}: no prefixes in it: download Apple's egress-ip-ranges.csv again"
            )
        return cls(spans)

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, str) or not ip:
            return False
        found = self._seen.get(ip)
        if found is None:
            found = self._lookup(ip)
            if len(self._seen) >= _CACHE_LIMIT:
                self._seen.clear()
            self._seen[ip] = found
        return found

    def _lookup(self, ip: str) -> bool:
        address = client_address(ip)
        if address is None:
            return False
        value = int(address)
        starts = self._starts[address.version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[address.version][i]


def client_address(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A hit's client address as one address (IPv4 as a dual-stack socket reports it,
    `::ffff:a.b.c.d`, as IPv4); None when there is none or it is not an address."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _span(prefix: str) -> tuple[int, int, int] | None:
    """`172.224.226.0/27` -> (4, first, last); host bits set are ignored, as Apple's list
    never has them. None when it is not a prefix. The C parser of the socket module rather
    than `ipaddress.ip_network`: `serve` and its hit writer each read the whole list at
    start, and for 300,000 lines that took 2.2-2.4 s against 0.7 s (bench/relays.py)."""
    address, slash, length = prefix.partition("/")
    version, family, bits = (6, socket.AF_INET6, 128) if ":" in address else (4, socket.AF_INET, 32)
    try:
        value = int.from_bytes(socket.inet_pton(family, address), "big")
    except (OSError, ValueError):
        return None
    if not slash:
        size = bits
    elif length.isascii() and length.isdigit() and int(length) <= bits:
        size = int(length)
    else:
        return None
    if version == 6 and value >> 32 == 0xFFFF and size >= 96:  # ::ffff:a.b.c.d, IPv4 written as 6
        version, value, bits, size = 4, value & 0xFFFFFFFF, 32, size - 96
    host = bits - size
    start = value >> host << host
    return version, start, start | ((1 << host) - 1)
