"""Apple's relay ranges (`dripper.engine.relays`): Apple's CSV as it is published, asked
by address; a line that is not a prefix is an error naming its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dripper.engine.relays import RelayRanges
from dripper.errors import ConfigError

# As https://mask-api.icloud.com/egress-ip-ranges.csv lists them.
APPLE_CSV = """\
172.224.226.0/27,GB,GB-EN,London,
172.224.226.32/27,GB,GB-EN,London,
104.28.0.17/32,US,US-CA,Los Angeles,
2a02:26f7:b3c0:4000::/64,GB,GB-EN,London,

# a comment someone added
146.75.180.0/25,DE,DE-BE,Berlin,
"""


@pytest.mark.parametrize(
    ("ip", "inside"),
    [
        ("172.224.226.0", True),  # first address of a prefix
        ("172.224.226.63", True),  # last of the second, merged with the first
        ("172.224.226.64", False),  # one past them
        ("172.224.225.255", False),  # one before them
        ("104.28.0.17", True),  # a /32
        ("104.28.0.16", False),
        ("146.75.180.127", True),
        ("::ffff:172.224.226.5", True),  # IPv4 as a dual-stack socket reports it
        ("2a02:26f7:b3c0:4000::1", True),
        ("2a02:26f7:b3c0:4000:ffff:ffff:ffff:ffff", True),
        ("2a02:26f7:b3c0:4001::", False),
        ("203.0.113.7", False),
        ("", False),
        ("not an address", False),
        (None, False),
    ],
)
def test_addresses_inside_and_outside_the_published_prefixes(ip: str | None, inside: bool) -> None:
    """Every address of a prefix is in, its neighbours are not, IPv4 and IPv6 alike."""
    ranges = RelayRanges.parse(APPLE_CSV, "egress-ip-ranges.csv")
    assert ranges.count == 5
    assert (ip in ranges) is inside
    assert (ip in ranges) is inside  # the second time from its cache, the same


def test_overlapping_prefixes_are_one_interval() -> None:
    """A /24 and a /27 inside it, and a host prefix written without its length."""
    ranges = RelayRanges.parse("10.0.0.0/24\n10.0.0.32/27\n10.0.2.1\n", "list")
    assert "10.0.0.200" in ranges
    assert "10.0.1.0" not in ranges
    assert "10.0.2.1" in ranges
    assert "10.0.2.2" not in ranges


def test_a_line_that_is_not_a_prefix_names_its_file_and_line() -> None:
    """One line saying where and what to do; nothing half-read."""
    with pytest.raises(ConfigError) as raised:
        RelayRanges.parse(APPLE_CSV + "<html>Not Found</html>\n", "relays.csv")
    message = str(raised.value)
    assert message.startswith("relays.csv:8: '<html>Not Found</html>' is not an IP prefix")
    assert "egress-ip-ranges.csv" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "prefix",
    ["10.0.0.0/24", "10.0.0.7/29", "10.0.0.7", "1.0.0.0/8", "2a02:26f7::/32",
     "2a02:26f7:b3c0:4000::5/64", "fe80::1/64"],
)  # fmt: skip
def test_each_prefix_covers_what_ipaddress_says(prefix: str) -> None:
    """The quick parser agrees with the standard library's `ip_network(strict=False)`:
    the first and last address of each prefix are in, their neighbours out."""
    import ipaddress

    network = ipaddress.ip_network(prefix, strict=False)
    ranges = RelayRanges.parse(prefix, "list")
    assert str(network.network_address) in ranges
    assert str(network.broadcast_address) in ranges
    assert str(network.network_address - 1) not in ranges
    assert str(network.broadcast_address + 1) not in ranges


@pytest.mark.parametrize(
    "line",
    ["10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0/24", "10.0.0.256", "2a02::/129",
     "2a02:::1", "10.0.0.0/２４", "prefix", "10.0.0.0/24/1"],
)  # fmt: skip
def test_what_is_not_a_prefix_is_refused(line: str) -> None:
    """Lengths out of range, malformed addresses, non-ASCII digits: refused, never guessed."""
    with pytest.raises(ConfigError):
        RelayRanges.parse(line, "list")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (APPLE_CSV + "172.224.227.0/2", "relays.csv:8: '172.224.227.0/2' is not a line"),
        (APPLE_CSV + "172.224.227.0/27,GB", "relays.csv:8: '172.224.227.0/27,GB' is not a line"),
        ("0.0.0.0/0\n", "relays.csv:1: '0.0.0.0/0' is not a line"),
        ("2a02::/12,GB,GB-EN,London,\n", "relays.csv:1: '2a02::/12,GB,GB-EN,London,' is not"),
        ("", "relays.csv: no prefixes in it"),
        ("# nothing but a comment\n\n", "relays.csv: no prefixes in it"),
    ],
)
def test_what_a_download_cut_short_leaves_is_refused(text: str, error: str) -> None:
    """A last line cut inside its prefix or its fields, a prefix wider than any relay's,
    an empty file: each refused in one line (never a quarter of the internet as relays)."""
    with pytest.raises(ConfigError) as raised:
        RelayRanges.parse(text, "relays.csv")
    assert str(raised.value).startswith(error)


def test_a_file_saved_with_a_byte_order_mark_reads_the_same(tmp_path: Path) -> None:
    """A copy saved by a Windows editor starts with a BOM: its first line still counts."""
    from dripper.services.hits import load_relay_ranges

    saved = tmp_path / "relays.csv"
    saved.write_bytes(b"\xef\xbb\xbf" + APPLE_CSV.replace("\n", "\r\n").encode())
    ranges = load_relay_ranges(str(saved))
    assert ranges.count == 5
    assert "172.224.226.1" in ranges


def test_ipv4_written_as_ipv6_is_ipv4() -> None:
    """`::ffff:172.224.226.0/123` lists the same addresses as `172.224.226.0/27`."""
    ranges = RelayRanges.parse("::ffff:172.224.226.0/123\n", "list")
    assert "172.224.226.31" in ranges
    assert "::ffff:172.224.226.31" in ranges
    assert "172.224.226.32" not in ranges
