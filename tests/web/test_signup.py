"""Subscribers through a real `dripper serve` on each database (DESIGN 13): a signup is a
pending row and no customer; its confirmation email leaves through the daemon's outbox and
shows nothing typed; GET /s/ changes nothing, POST /s/ makes the customer with their
consent and a `subscribe` event (once, however many confirm at once); the limits; the
preference page; bad input answered 4xx with nothing stored.

Every test posts from an address of its own (X-Forwarded-For, which serve trusts from
loopback), so the per-IP limit of one never meets another's signups."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from dripper.engine.signup import consent_hash
from dripper.store import open_store
from dripper.store.schema import consent_records, customers, events, signups
from dripper.tokens import Keyring
from tests.support.serve import SECRET, ServeProcess, Shop, links, make_shop

NOW = "2027-01-04T15:00:00Z"
LATER = "2027-01-12T15:00:00Z"  # eight days on: a 7-day confirmation link has expired
CONSENT = "Yes, send me the brewing letter. I can leave any time."


def signup_shop(root: Path, db_url: str, *, per_ip: str = "3/h", extra: str = "") -> Shop:
    shop = make_shop(root, db_url)
    text = shop.config.read_text()
    text = text.replace("enabled = false", "enabled = true", 1)
    text = text.replace('per_ip = "10/h"', f'per_ip = "{per_ip}"')
    text = text.replace(
        'consent_text = "I would like the brewing letter by email. I can unsubscribe at any '
        'time with the link in every email."',
        f'consent_text = "{CONSENT}"',
    )
    text = text.replace(
        'news = "The brewing letter"', 'news = "The brewing letter"\noffers = "Offers"'
    )
    shop.config.write_text(text + extra)
    assert 'per_ip = "' + per_ip in shop.config.read_text()
    return shop


@pytest.fixture(scope="module")
def sshop(tmp_path_factory: pytest.TempPathFactory, module_db_url: str) -> Shop:
    return signup_shop(tmp_path_factory.mktemp("signup") / "shop", module_db_url)


@pytest.fixture(scope="module")
def sserver(sshop: Shop) -> Iterator[ServeProcess]:
    with ServeProcess(sshop, now=NOW) as running:
        yield running


_ips = iter(range(1, 250))


def ip() -> dict[str, str]:
    """A client address of this call's own."""
    return {"X-Forwarded-For": f"203.0.113.{next(_ips)}"}


def post(shop: Shop, data: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(f"{shop.base_url}/subscribe", data=data, headers={**ip(), **headers})


def rows(shop: Shop, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[sa.RowMapping]:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            return list(conn.execute(sa.select(table).where(*where)).mappings())
    finally:
        store.close()


def confirm_link(shop: Shop, address: str) -> str:
    shop.ok("--now", NOW, "run", "--once")
    message = shop.email_to(address, "confirm")
    found = [u for u in links(message, shop.base_url) if "/s/" in u]
    assert len(found) == 1, found
    return found[0]


def test_signup_is_404_until_enabled(tmp_path: Path, db_url: str) -> None:
    """`[signup] enabled = false` (the default): /subscribe and /s/ answer 404."""
    shop = make_shop(tmp_path / "shop", db_url)
    with ServeProcess(shop, now=NOW):
        assert httpx.get(f"{shop.base_url}/subscribe").status_code == 404
        assert post(shop, {"email": "a@example.com"}).status_code == 404
    assert rows(shop, signups) == []


def test_a_signup_is_pending_and_makes_no_customer(sshop: Shop, sserver: ServeProcess) -> None:
    """A plain form post: the "check your inbox" page; a pending signup holding what was
    posted (address, name, form, topics, IP, user agent, the consent text's hash, expiry);
    no customer."""
    answer = post(
        sshop,
        {"email": "New.Reader@Example.com", "first_name": "Nia", "topics": ["news"]},
        **{"User-Agent": "test-browser/1"},
    )
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text
    assert "Nia" not in answer.text
    (row,) = rows(sshop, signups, signups.c.email == "new.reader@example.com")
    assert row["first_name"] == "Nia"
    assert row["form"] == "default"
    assert row["topics"] == ["news"]
    assert row["ip"].startswith("203.0.113.")
    assert row["user_agent"] == "test-browser/1"
    assert row["text_hash"] == consent_hash(CONSENT)
    assert row["status"] == "queued"
    assert (row["expires_at"] - row["created_at"]).days == 7
    assert rows(sshop, customers, customers.c.email == "new.reader@example.com") == []


def test_the_answer_is_the_same_whatever_the_address(sshop: Shop, sserver: ServeProcess) -> None:
    """New, already a customer, unsubscribed, honeypot filled: the same page, byte for
    byte; JSON gets {"status": "pending"}; the honeypot's post stores nothing."""
    sshop.ok("--now", NOW, "customers", "add", "known@example.com")
    sshop.ok("--now", NOW, "customers", "add", "gone@example.com")
    store = open_store(sshop.db_url)
    try:
        store.unsubscribe("gone@example.com", now=datetime(2027, 1, 4, tzinfo=UTC))
    finally:
        store.close()
    pages = {
        post(sshop, {"email": address}).text
        for address in ("brand.new@example.com", "known@example.com", "gone@example.com")
    }
    pages.add(post(sshop, {"email": "bot@example.com", "website": "http://spam"}).text)
    assert len(pages) == 1
    assert rows(sshop, signups, signups.c.email == "bot@example.com") == []
    answer = httpx.post(
        f"{sshop.base_url}/subscribe", json={"email": "json@example.com"}, headers=ip()
    )
    assert (answer.status_code, answer.json()) == (200, {"status": "pending"})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not an address"}, "email"),
        ({"email": "a" * 250 + "@example.com"}, "email"),
        ({"email": "line@example.com", "first_name": "Ann\r\nBcc: x@example.com"}, "first_name"),
        ({"email": "markup@example.com", "first_name": "<a href=x>win</a>"}, "first_name"),
        ({"email": "topic@example.com", "topics": ["gossip"]}, "topics"),
        ({"email": "form@example.com", "form": "nope"}, "form"),
    ],
)
def test_bad_input_is_refused_and_nothing_stored(
    sshop: Shop, sserver: ServeProcess, data: dict[str, object], field: str
) -> None:
    """Each wrong field: a 400 naming it (JSON) or a page (form), and no signup stored."""
    before = len(rows(sshop, signups))
    answer = httpx.post(f"{sshop.base_url}/subscribe", json=data, headers=ip())
    assert answer.status_code == 400
    assert answer.json()["field"] == field
    page = post(sshop, data)
    assert page.status_code == 400
    for echoed in ("<script", "Bcc", "win</a>"):  # nothing typed comes back as markup
        assert echoed not in page.text
    assert len(rows(sshop, signups)) == before


def test_a_body_over_16_kib_is_refused(sshop: Shop, sserver: ServeProcess) -> None:
    """413, nothing stored."""
    before = len(rows(sshop, signups))
    answer = post(sshop, {"email": "big@example.com", "first_name": "x" * 17_000})
    assert answer.status_code == 413
    assert len(rows(sshop, signups)) == before


def test_the_per_ip_limit_answers_429(sshop: Shop, sserver: ServeProcess) -> None:
    """`per_ip = "3/h"`: the fourth signup from one address in the hour gets 429 with
    Retry-After and is not stored; another address still gets in."""
    same = ip()
    answers = [
        httpx.post(
            f"{sshop.base_url}/subscribe", data={"email": f"ip{n}@example.com"}, headers=same
        )
        for n in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].headers["Retry-After"] == "3600"
    assert rows(sshop, signups, signups.c.email == "ip3@example.com") == []
    assert post(sshop, {"email": "ip3@example.com"}).status_code == 200


def test_confirming_makes_the_customer_with_consent_and_a_welcome(
    sshop: Shop, sserver: ServeProcess
) -> None:
    """The confirmation email (no typed name in it, no List-Unsubscribe) goes out on the
    next tick; GET /s/ shows a button and changes nothing; POST makes the customer
    subscribed with the chosen topics, stores the consent record field by field and one
    `subscribe` event; a second POST changes nothing; the next tick sends the welcome."""
    address = "confirm.me@example.com"
    assert (
        post(
            sshop,
            {"email": address, "first_name": "Spammy Name", "topics": ["news"]},
            **{"User-Agent": "signup-agent"},
        ).status_code
        == 200
    )
    link = confirm_link(sshop, address)
    message = sshop.email_to(address, "confirm")
    assert "Spammy" not in message.as_string()
    assert message["List-Unsubscribe"] is None
    page = httpx.get(link)
    assert page.status_code == 200
    assert "<button" in page.text
    assert rows(sshop, customers, customers.c.email == address) == []
    done = httpx.post(link, headers={"User-Agent": "confirm-agent", **ip()})
    assert done.status_code == 200
    assert "You are subscribed" in done.text
    (customer,) = rows(sshop, customers, customers.c.email == address)
    assert customer["status"] == "subscribed"
    assert customer["topics"] == ["news"]
    assert customer["first_name"] == "Spammy Name"  # theirs once they confirmed
    (record,) = rows(sshop, consent_records, consent_records.c.customer_id == customer["id"])
    assert record["kind"] == "confirmed"
    assert record["marketing"] == "subscribed"
    assert record["source"] == "form:default"
    assert record["ip"].startswith("203.0.113.")
    assert record["user_agent"] == "confirm-agent"
    assert record["text_hash"] == consent_hash(CONSENT)
    assert record["topics"] == ["news"]
    assert httpx.post(link).status_code == 200  # again: nothing more
    subscribed = rows(
        sshop, events, events.c.customer_id == customer["id"], events.c.type == "subscribe"
    )
    assert len(subscribed) == 1
    sshop.ok("--now", NOW, "run", "--once")
    sshop.email_to(address, "Welcome to the brewing letter")
    shown = sshop.ok("customers", "show", address, "--json").output
    assert '"kind": "confirmed"' in shown
    assert '"consent_text_sha256"' in shown


def test_two_confirmations_at_once_make_one_customer_and_one_event(
    sshop: Shop, sserver: ServeProcess
) -> None:
    """Eight POSTs to one link at the same moment: all 200, one customer, one event."""
    address = "race@example.com"
    post(sshop, {"email": address})
    link = confirm_link(sshop, address)
    answers: list[int] = []

    def hit() -> None:
        answers.append(httpx.post(link, timeout=30).status_code)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    (customer,) = rows(sshop, customers, customers.c.email == address)
    assert len(rows(sshop, events, events.c.customer_id == customer["id"])) == 1
    assert len(rows(sshop, consent_records, consent_records.c.customer_id == customer["id"])) == 1


def test_forged_and_expired_links(sshop: Shop, sserver: ServeProcess) -> None:
    """A forged or altered token: 404. Eight days on, the link says to sign up again
    (410) and confirms nothing."""
    address = "late@example.com"
    post(sshop, {"email": address})
    link = confirm_link(sshop, address)
    assert httpx.post(link[:-2] + "xx").status_code == 404
    assert httpx.get(f"{sshop.base_url}/s/abc.s.def.ghi").status_code == 404
    sserver.stop()  # the same port, eight days on
    try:
        with ServeProcess(sshop, now=LATER):
            assert httpx.get(link).status_code == 410
            assert httpx.post(link).status_code == 410
    finally:
        sserver.start()
    assert rows(sshop, customers, customers.c.email == address) == []


def test_one_confirmation_per_address_per_day(sshop: Shop, sserver: ServeProcess) -> None:
    """Three signups of one address: one confirmation email; the others are kept as
    limited with the reason."""
    address = "thrice@example.com"
    for _ in range(3):
        post(sshop, {"email": address})
    sshop.ok("--now", NOW, "run", "--once")
    sent = [m for m in sshop.emails() if address in str(m["To"])]
    assert len(sent) == 1
    statuses = sorted(r["status"] for r in rows(sshop, signups, signups.c.email == address))
    assert statuses == ["limited", "limited", "sent"]
    reasons = {r["reason"] for r in rows(sshop, signups, signups.c.status == "limited")}
    assert "one confirmation per address per 24 hours" in reasons


def test_no_confirmation_to_a_mailbox_that_hard_bounced(tmp_path: Path, db_url: str) -> None:
    """An address suppressed as bounced this month gets no confirmation email; the daily
    cap stops the rest (`max_per_day = 1`)."""
    shop = signup_shop(tmp_path / "shop", db_url, extra="")
    text = shop.config.read_text().replace("max_per_day = 1000", "max_per_day = 1")
    shop.config.write_text(text)
    store = open_store(shop.db_url)
    try:
        store.ensure_schema()
        from dripper.store.records import SuppressionReason

        store.suppress(
            "bounced@example.com",
            reason=SuppressionReason.BOUNCED,
            now=datetime(2027, 1, 1, tzinfo=UTC),
        )
    finally:
        store.close()
    with ServeProcess(shop, now=NOW):
        for address in ("bounced@example.com", "first@example.com", "second@example.com"):
            assert post(shop, {"email": address}).status_code == 200
    shop.ok("--now", NOW, "run", "--once")
    assert [str(m["To"]) for m in shop.emails()] == ["first@example.com"]
    reasons = {r["email"]: r["reason"] for r in rows(shop, signups)}
    assert reasons["bounced@example.com"] == "the mailbox hard-bounced in the last 30 days"
    assert "daily cap" in reasons["second@example.com"]


def test_only_the_person_undoes_an_unsubscribe(sshop: Shop, sserver: ServeProcess) -> None:
    """An unsubscribed customer: an import saying `subscribed` leaves them unsubscribed;
    their own confirmed signup brings them back, and the record shows both."""
    address = "comeback@example.com"
    sshop.ok("--now", NOW, "customers", "add", address)
    store = open_store(sshop.db_url)
    try:
        store.unsubscribe(address, now=datetime(2027, 1, 4, tzinfo=UTC))
    finally:
        store.close()
    csv = sshop.root / "again.csv"
    csv.write_text(f"email,marketing\n{address},subscribed\n")
    sshop.ok("--now", NOW, "customers", "import", str(csv))
    (row,) = rows(sshop, customers, customers.c.email == address)
    assert row["status"] == "unsubscribed"
    post(sshop, {"email": address})
    assert httpx.post(confirm_link(sshop, address)).status_code == 200
    (row,) = rows(sshop, customers, customers.c.email == address)
    assert row["status"] == "subscribed"
    kinds = [
        r["kind"] for r in rows(sshop, consent_records, consent_records.c.customer_id == row["id"])
    ]
    assert kinds == ["unsubscribed", "confirmed"]


def test_the_preference_page_keeps_topics_and_one_click_stops_all(
    sshop: Shop, sserver: ServeProcess
) -> None:
    """GET /u/ lists each topic as a checkbox and changes nothing; "save" with no topic
    ticked keeps the customer subscribed with no topics (a `topics` consent record); the
    RFC 8058 one-click POST unsubscribes from everything."""
    address = "prefs@example.com"
    post(sshop, {"email": address, "topics": ["news", "offers"]})
    httpx.post(confirm_link(sshop, address))
    sshop.ok("--now", NOW, "run", "--once")
    welcome = sshop.email_to(address, "Welcome")
    (u,) = [x for x in links(welcome, sshop.base_url) if "/u/" in x]
    page = httpx.get(u)
    assert page.text.count("type='checkbox'") == 2
    assert "The brewing letter" in page.text
    assert httpx.post(u, data={"action": "save"}).status_code == 200
    (row,) = rows(sshop, customers, customers.c.email == address)
    assert (row["status"], row["topics"]) == ("subscribed", [])
    kinds = [
        r["kind"] for r in rows(sshop, consent_records, consent_records.c.customer_id == row["id"])
    ]
    assert kinds == ["confirmed", "topics"]
    one_click = httpx.post(u, content=b"List-Unsubscribe=One-Click")
    assert one_click.status_code == 200
    (row,) = rows(sshop, customers, customers.c.email == address)
    assert row["status"] == "unsubscribed"


def test_pages_speak_the_browsers_language(sshop: Shop, sserver: ServeProcess) -> None:
    """Accept-Language picks the catalog (German, French, Spanish, Dutch), else English."""
    headings = {}
    for lang in ("de", "fr", "es", "nl", "ja"):
        page = httpx.get(f"{sshop.base_url}/subscribe", headers={"Accept-Language": lang})
        assert f"lang='{lang if lang != 'ja' else 'en'}'" in page.text
        headings[lang] = page.text.split("<h1>")[1].split("</h1>")[0]
    assert len(set(headings.values())) == 5
    assert headings["ja"].startswith("Subscribe")


def test_the_per_ip_limit_holds_under_concurrent_posts(sshop: Shop, sserver: ServeProcess) -> None:
    """Twenty POSTs from one address at the same moment: exactly `per_ip` (3) stored, the
    rest 429 (on PostgreSQL the address is locked while its count is taken)."""
    same = ip()
    codes: list[int] = []

    def one(n: int) -> None:
        data = {"email": f"burst{n}@example.com"}
        codes.append(httpx.post(f"{sshop.base_url}/subscribe", data=data, headers=same).status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 3 + [429] * 17
    stored = rows(sshop, signups, signups.c.ip == same["X-Forwarded-For"])
    assert len(stored) == 3


def test_signing_up_again_adds_topics_and_takes_none_away(
    sshop: Shop, sserver: ServeProcess
) -> None:
    """A reader with `news` who signs up again choosing `offers` keeps both; one who never
    chose (every topic) keeps every topic."""
    for address, first, then, expected in (
        ("both@example.com", ["news"], ["offers"], ["news", "offers"]),
        ("all@example.com", None, ["offers"], None),
    ):
        data: dict[str, object] = {"email": address}
        if first is not None:
            data["topics"] = first
        post(sshop, data)
        httpx.post(confirm_link(sshop, address))
        post(sshop, {"email": address, "topics": then})
        (signup,) = rows(sshop, signups, signups.c.email == address, signups.c.status == "queued")
        token = Keyring.from_secret(SECRET).sign_signup(signup["key"])
        key_link = f"{sshop.base_url}/s/{token}"
        assert httpx.post(key_link).status_code == 200
        (row,) = rows(sshop, customers, customers.c.email == address)
        assert row["topics"] == expected, address


def test_the_answer_page_speaks_the_customers_language(
    module_shop: Shop, module_server: ServeProcess
) -> None:
    """A one-click answer's thank-you page follows the customer's locale (Grace, now de),
    whatever the browser asks for."""
    module_shop.ok("customers", "add", "grace@example.com", "--locale", "de")
    answer = next(
        u
        for m in module_shop.emails()
        if "grace@example.com" in str(m["To"])
        for u in links(m, module_shop.base_url)
        if "/a/" in u
    )
    headers = {"user-agent": "Mozilla/5.0 (X11; Linux)", "accept-language": "fr"}
    page = httpx.get(answer, headers=headers)
    assert page.status_code == 200
    assert "lang='de'" in page.text
