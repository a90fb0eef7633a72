"""The one-click "done" link of a person's morning digest (DESIGN 16), read from the
digest in the outbox and followed through a real `dripper serve` on each database: a GET
shows the task and changes nothing (a mail scanner closes no task), the POST marks it
done with the note, a second POST changes nothing, a forged link is 404."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support.serve import ServeProcess, make_shop

T0 = "2027-01-04T15:00:00Z"
MORNING = "2027-01-06T09:00:00Z"


def test_the_digest_link_shows_the_task_and_its_button_closes_it(
    tmp_path: Path, db_url: str
) -> None:
    """GET twice: the page and the task still open; POST: done, with the note on the
    customer's sheet; POST again: "closed already", nothing changed; a forged token: 404."""
    shop = make_shop(tmp_path / "shop", db_url)
    shop.ok("--now", T0, "customers", "add", "grace@example.com", "--first-name", "Grace")
    shop.ok("--now", T0, "event", "purchase", "grace@example.com", "--data", '{"amount": 20}')
    data = '{"question": "first_bag", "answer": "poor"}'
    shop.ok("--now", T0, "event", "feedback", "grace@example.com", "--data", data)
    shop.ok("--now", MORNING, "run", "--once")
    digest = shop.email_to("owner@acme.test", "Your tasks today")
    body = digest.get_body(("plain",))
    assert body is not None
    urls = re.findall(re.escape(shop.base_url) + r"/t/[A-Za-z0-9._-]+", body.get_content())
    assert len(urls) == 1
    link = urls[0]

    def task() -> dict[str, object]:
        listed = json.loads(shop.ok("tasks", "--all", "--json").output)
        assert len(listed) == 1
        return dict(listed[0])

    with ServeProcess(shop, now=MORNING):
        assert httpx.head(link).status_code == 200  # a link checker's HEAD closes nothing
        assert task()["status"] == "open"
        for _ in range(2):  # a scanner, then the person: neither changes anything
            page = httpx.get(link)
            assert page.status_code == 200
            assert "Call Grace: the first bag was poor" in page.text
            assert "<form method='post'>" in page.text
            assert task()["status"] == "open"
        done = httpx.post(link, data={"note": "Called, sending a fresh bag"})
        assert done.status_code == 200
        assert "Done. Thank you!" in done.text
        closed = task()
        assert (closed["status"], closed["note"]) == ("done", "Called, sending a fresh bag")
        again = httpx.post(link, data={"note": "twice"})
        assert again.status_code == 200
        assert "closed already" in again.text
        assert task()["note"] == "Called, sending a fresh bag"
        forged = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        assert httpx.get(forged).status_code == 404
        assert httpx.post(forged).status_code == 404
    sheet = json.loads(shop.ok("customers", "show", "grace@example.com", "--json").output)
    assert sheet["tasks"][0]["note"] == "Called, sending a fresh bag"
