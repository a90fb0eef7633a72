"""`[tracking] apple_relay_ranges` on a real `dripper serve`, on both databases: with
Apple's published relay ranges configured, an open from one of them is stored as a
machine's (Mail Privacy Protection loads images through them) and a click from one is
still a person's; a file that is not such a list stops `serve` and `dripper check` with one
line naming its file and line."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import sqlalchemy as sa

from dripper.store import open_store
from dripper.store.schema import tracking_events
from tests.support.serve import ENV, PROGRAM, ServeProcess, Shop, links
from tests.web.conftest import DAY20

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"


def configure(shop: Shop, relays: str) -> None:
    """`apple_relay_ranges` set to a file beside the config, as a shop would keep it."""
    (shop.root / "apple-relays.csv").write_text(relays)
    text = shop.config.read_text()
    assert 'apple_relay_ranges = ""' in text  # the scaffold lists the key, empty
    text = text.replace('apple_relay_ranges = ""', 'apple_relay_ranges = "apple-relays.csv"')
    shop.config.write_text(text)


def stored(shop: Shop, count: int) -> list[tuple[str, bool, str]]:
    """(kind, machine, reason) of the opens and clicks, once `count` are written."""
    deadline = time.monotonic() + 10
    store = open_store(shop.db_url)
    try:
        while True:
            with store.reading() as conn:
                rows = conn.execute(
                    sa.select(tracking_events.c.kind, tracking_events.c.machine,
                              tracking_events.c.data)
                    .where(tracking_events.c.kind.in_(["open", "click"]))
                ).all()  # fmt: skip
            if len(rows) >= count or time.monotonic() > deadline:
                return sorted((k, m, (d or {}).get("reason", "")) for k, m, d in rows)
            time.sleep(0.05)
    finally:
        store.close()


def test_opens_from_apple_relays_are_machine_opens(shop: Shop) -> None:
    """The test's own address, 127.0.0.1, listed as a relay: a browser's open from it is a
    machine open; its click is a person's, with the open it implies."""
    configure(shop, "172.224.226.0/27,GB,GB-EN,London,\n127.0.0.0/8,ZZ,,Loopback,\n::1/128,ZZ,,,\n")
    urls = links(shop.email_to("grace@example.com", "Thank you"), shop.base_url)
    pixel = next(u for u in urls if "/o/" in u)
    click = next(u for u in urls if "/c/" in u)
    with ServeProcess(shop, now=DAY20):
        assert httpx.get(pixel, headers={"user-agent": BROWSER}).status_code == 200
        assert httpx.get(click, headers={"user-agent": BROWSER}).status_code == 302
        found = stored(shop, 3)
    assert found == [
        ("click", False, "a person's browser"),
        ("open", False, "implied by a click"),
        ("open", True, "Apple Mail Privacy Protection (Apple's relay ranges)"),
    ]


def test_without_the_key_the_same_open_is_a_person(shop: Shop) -> None:
    """The control: the same open with no ranges configured is a mail client's."""
    pixel = next(
        u for u in links(shop.email_to("grace@example.com", "Thank you"), shop.base_url)
        if "/o/" in u
    )
    with ServeProcess(shop, now=DAY20):
        assert httpx.get(pixel, headers={"user-agent": BROWSER}).status_code == 200
        assert stored(shop, 1) == [("open", False, "a mail client")]


def test_a_file_that_is_not_a_list_of_prefixes_is_one_line(shop: Shop) -> None:
    """An HTML error page saved instead of the CSV: `dripper check` names the file and line
    (exit 1, a problem); `dripper serve` says the same in one line and exits 2; a missing
    file likewise."""
    configure(shop, "127.0.0.0/8,ZZ,,,\n<html>Not Found</html>\n")
    target = shop.root / "apple-relays.csv"
    checked = shop.run("check")
    assert checked.exit_code == 1, checked.output
    assert f"{target}:2: '<html>Not Found</html>' is not an IP prefix" in checked.output
    command = [PROGRAM, "--config", str(shop.config), "serve", "--port", str(shop.port)]
    for expected in (f"{target}:2:", f"cannot read {target}"):
        done = subprocess.run(
            command, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert expected in lines[0]
        assert "Traceback" not in done.stderr
        target.unlink(missing_ok=True)  # then: no file at all
    checked = shop.run("check")
    assert checked.exit_code == 1, checked.output
    line = next(x for x in checked.output.splitlines() if "apple_relay_ranges" in x)
    assert f"cannot read {target}" in line
    assert line.count("apple_relay_ranges") == 1, line  # the key said once
