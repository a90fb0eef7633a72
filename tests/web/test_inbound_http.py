"""`POST /inbound` on a real `dripper serve`, on SQLite and PostgreSQL: what an inbound-mail
webhook posts is classified and acted on as `dripper inbound` does, once; it needs the API
token; a 50 MB message is refused without being held; broken MIME is unmatched."""

from __future__ import annotations

import httpx
import pytest

from tests.support.inbound import configure, corpus, seed
from tests.support.serve import API_TOKEN, ServeProcess, Shop, make_shop
from tests.web.conftest import DAY20

AUTH = {"authorization": f"Bearer {API_TOKEN}", "content-type": "message/rfc822"}


@pytest.fixture
def mailroom(tmp_path: object, db_url: str) -> Shop:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    shop = make_shop(tmp_path / "shop", db_url)
    configure(shop.config)
    seed(db_url)
    return shop


def test_posted_messages_are_classified_once(mailroom: Shop) -> None:
    """A hard bounce, a reply, a complaint: each its class; the same message again is
    recorded before; no token, no entry."""
    with ServeProcess(mailroom, now=DAY20):
        url = f"{mailroom.base_url}/inbound"
        for name, kind in (
            ("postfix-hard-user-unknown.eml", "bounce_hard"),
            ("reply-gmail-with-quote.eml", "reply"),
            ("arf-yahoo-abuse.eml", "complaint"),
            ("broken-mime.eml", "unmatched"),
        ):
            answer = httpx.post(url, content=corpus(name), headers=AUTH)
            assert answer.status_code == 200, answer.text
            assert (answer.json()["class"], answer.json()["new"]) == (kind, True)
        again = httpx.post(url, content=corpus("reply-gmail-with-quote.eml"), headers=AUTH)
        assert again.json()["new"] is False
        denied = httpx.post(url, content=corpus("postfix-soft-delayed.eml"))
        assert denied.status_code == 401
        assert "bearer" in denied.json()["error"]
        huge = httpx.post(url, content=b"x" * (50 * 1024 * 1024), headers=AUTH, timeout=60)
        assert huge.status_code == 413
        empty = httpx.post(url, content=b"", headers=AUTH)
        assert empty.status_code == 400
    shown = mailroom.ok("customers", "show", "grace@example.net").output
    assert "suppressed: bounced" in shown


# --- the database away: 503 with Retry-After, so the service keeps the message and retries ------


def _retry_later(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"].isdigit()
    assert "not recorded, try again" in answer.json()["error"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_locked_database_answers_503_with_retry_after(mailroom: Shop) -> None:
    """Another process holds SQLite's write lock past serve's busy timeout (10 s): 503
    with Retry-After, nothing recorded; once it lets go, the retried post is taken."""
    from tests.cli.test_inbound import write_lock_held

    raw = corpus("reply-gmail-with-quote.eml")
    with ServeProcess(mailroom, now=DAY20):
        url = f"{mailroom.base_url}/inbound"
        with write_lock_held(mailroom.db_url):
            _retry_later(httpx.post(url, content=raw, headers=AUTH, timeout=60))
        taken = httpx.post(url, content=raw, headers=AUTH, timeout=60)
        assert (taken.status_code, taken.json()["class"], taken.json()["new"]) == (
            200,
            "reply",
            True,
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_read_only_database_answers_503_with_retry_after(mailroom: Shop) -> None:
    """serve on a database it can read but not write: a posted message is 503 with
    Retry-After, never a 500 the service would give up on."""
    import sqlalchemy as sa

    path = sa.make_url(mailroom.db_url).database
    text = mailroom.config.read_text()
    # SQLite's own read-only mode: file permissions would not stop a test run as root.
    read_only = f"sqlite+pysqlite:///file:{path}?mode=ro&uri=true"
    mailroom.config.write_text(text.replace(f'url = "{mailroom.db_url}"', f'url = "{read_only}"'))
    with ServeProcess(mailroom, now=DAY20):
        raw = corpus("reply-gmail-with-quote.eml")
        _retry_later(httpx.post(f"{mailroom.base_url}/inbound", content=raw, headers=AUTH))
