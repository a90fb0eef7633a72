"""`dripper stats` counts what the real commands recorded: emails sent by `run --once`,
opens, clicks and answers on a real `dripper serve` (people, Apple's proxy and a link
scanner among them), an unsubscribe, a reply and a bounce through `dripper inbound`, and a
second purchase, on SQLite and PostgreSQL; machine opens and scanner clicks are shown and
never in a rate; the JSON has DESIGN 8's keys. The commands that only read the shop (and
one unsubscribe of Hiro, whom none of them counts) share one shop per database; the test
that clicks, replies and stops serve has its own."""

from __future__ import annotations

import json
import re
import time
from email.message import EmailMessage
from typing import Any

import httpx
import sqlalchemy as sa

from dripper.inbound.samples import bounce, reply
from dripper.store import open_store
from dripper.store.schema import inbound_messages
from tests.support.serve import ServeProcess, Shop, links

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Safari/605.1.15"
APPLE = "Mozilla/5.0"  # Apple Mail Privacy Protection's prefetch
LATER = "2027-01-25T09:00:00Z"

ROW_KEYS = {
    "step", "variant", "sent", "failed", "bounced", "delivered", "opens_human",
    "opens_machine", "unique_opens", "clicks_human", "clicks_scanner", "unique_clicks",
    "replies", "unsubscribes", "complaints", "conversions", "revenue", "refunds",
    "revenue_other", "open_rate",
    "click_rate", "reply_rate", "unsubscribe_rate", "complaint_rate", "conversion_rate",
    "bounce_rate",
}  # fmt: skip


def count_rows(shop: Shop, table: sa.Table) -> int:
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        store.close()


def wait_for(shop: Shop, table: sa.Table, count: int) -> None:
    """Hits are written in batches by the server: wait for them, never forever."""
    deadline = time.monotonic() + 10
    while count_rows(shop, table) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count_rows(shop, table) == count


def link(shop: Shop, to: str, subject: str, route: str) -> str:
    found = [u for u in links(shop.email_to(to, subject), shop.base_url) if f"/{route}/" in u]
    assert found, (to, subject, route)
    return found[0]


def offer(shop: Shop, to: str) -> EmailMessage:
    """The second-sale offer (either subject variant): the email that asks about the bag."""
    for message in shop.emails():
        if to in str(message["To"]) and any(".cG9vcg." in u for u in links(message, shop.base_url)):
            return message
    raise AssertionError(f"no offer to {to}")


def listen(shop: Shop) -> None:
    """What customers and machines did with the emails of the `shop` fixture."""
    with httpx.Client(headers={"user-agent": BROWSER}) as client:
        ada_thanks = link(shop, "ada@example.com", "Thank you", "o")
        assert client.get(ada_thanks).status_code == 200  # Ada opens her thank-you
        assert client.get(ada_thanks, headers={"user-agent": APPLE}).status_code == 200
        grace_thanks = link(shop, "grace@example.com", "Thank you", "o")
        for _ in range(2):  # Grace opens hers twice: two opens, one unique
            assert client.get(grace_thanks).status_code == 200
        # Grace clicks in her second-sale offer (a click implies an open)...
        grace = offer(shop, "grace@example.com")
        click = next(u for u in links(grace, shop.base_url) if "/c/" in u)
        assert client.get(click).status_code == 302
        # ...and a scanner checks Linus's offer with HEAD requests: not a person.
        linus = offer(shop, "linus@example.com")
        for url in [u for u in links(linus, shop.base_url) if "/c/" in u][:2]:
            assert client.head(url).status_code == 302
        # Linus answers "Not for me" with one click: a click, an open, an answer.
        poor = next(u for u in links(linus, shop.base_url) if ".cG9vcg." in u)
        assert client.get(poor).status_code == 200
        # Grace unsubscribes with the offer's List-Unsubscribe (RFC 8058).
        url = re.findall(r"<(http[^>]+)>", str(grace["List-Unsubscribe"]))[0]
        answer = client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200


def pick(row: dict[str, Any], *keys: str) -> tuple[Any, ...]:
    return tuple(row[k] for k in keys)


FUNNEL = ("sent", "bounced", "delivered", "opens_human", "opens_machine", "unique_opens")
CLICKS = ("clicks_human", "clicks_scanner", "unique_clicks", "replies", "unsubscribes")
GOALS = ("complaints", "conversions", "revenue")


def test_stats_from_the_real_commands(shop: Shop, server: ServeProcess) -> None:
    """Exact counts per step and variant, rates of delivered with machines left out, the
    second sale, answers and the replies waiting for a person; the JSON key by key."""
    listen(shop)
    server.stop()  # SIGTERM: every hit is written first
    ada = shop.email_to("ada@example.com", "Thank you")
    zoe = shop.email_to("zoe@example.com")  # her newsletter: the address is gone
    for raw in (reply(ada, "Lovely, thank you!"), bounce(zoe)):
        path = shop.root / "incoming.eml"
        path.write_bytes(raw)
        shop.ok("--now", LATER, "inbound", str(path))
    report = json.loads(shop.ok("--now", LATER, "stats", "--json").output)

    assert set(report) == {
        "campaigns", "currency", "second_sale", "listening", "topics", "tasks", "webhooks",
        "at_risk",
    }  # fmt: skip
    # The shipped task steps, none made in this shop yet; no webhook step is shipped.
    assert [(t["campaign"], t["step"], t["created"]) for t in report["tasks"]] == [
        ("birthday-card", "card", 0), ("thank-you-card", "card", 0), ("unhappy-call", "call", 0)
    ]  # fmt: skip
    assert report["webhooks"] == []
    assert report["topics"] == [{"topic": "news", "label": "The brewing letter", "left": 0}]
    names = [c["campaign"] for c in report["campaigns"]]
    assert names == sorted(names)
    assert len(names) == 8
    by_name = {c["campaign"]: c for c in report["campaigns"]}
    for campaign in report["campaigns"]:
        extra = {"holdout"} if campaign["campaign"] == "welcome" else set()  # holdout: 10%
        assert set(campaign) == {"campaign", "steps", "variants"} | extra
        for row in campaign["steps"]:
            assert set(row) == ROW_KEYS
            assert row["variant"] is None
        for row in campaign["variants"]:
            assert set(row) == ROW_KEYS | {"chance_best", "chance_on"}
    assert by_name["vip"]["steps"][0]["sent"] == 0

    held = by_name["welcome"]["holdout"]  # DESIGN 17: a shop this small says so
    assert held["held"]["customers"] == 0
    assert held["treated"]["customers"] == held["treated"]["customers"] > 0
    assert held["lift"] is None
    assert held["verdict"].startswith("not enough data: ")
    thanks, offers = by_name["welcome"]["steps"]
    assert thanks["step"] == "thank-you"
    assert offers["step"] == "second-sale"
    # Ada opened once (and Apple's proxy once), Grace twice; Ada replied.
    assert pick(thanks, *FUNNEL) == (3, 0, 3, 3, 1, 2)
    assert pick(thanks, *CLICKS) == (0, 0, 0, 1, 0)
    assert thanks["open_rate"] == round(2 / 3, 4)  # the machine open is not in it
    assert thanks["reply_rate"] == round(1 / 3, 4)
    # Grace clicked and unsubscribed; a scanner HEADed Linus's links and Linus answered;
    # Ada bought again (30.00) after hers.
    assert pick(offers, *FUNNEL) == (3, 0, 3, 2, 0, 2)
    assert pick(offers, *CLICKS) == (2, 2, 2, 0, 1)
    assert pick(offers, *GOALS) == (0, 1, 30.0)
    assert offers["click_rate"] == round(2 / 3, 4)  # 2 people of 3 delivered, not 4 hits
    assert offers["conversion_rate"] == round(1 / 3, 4)

    # The A/B variants of the offer add up to the step; too few to say who wins.
    variants = by_name["welcome"]["variants"]
    assert [v["variant"] for v in variants] == [0, 1]
    for key in ("sent", "unique_opens", "clicks_human", "clicks_scanner", "conversions"):
        assert sum(v[key] for v in variants) == offers[key]
    assert [v["chance_best"] for v in variants] == [None, None]
    assert {v["chance_on"] for v in variants} == {"conversions"}

    newsletter = by_name["value-newsletter"]["steps"][0]
    assert pick(newsletter, "sent", "bounced", "delivered") == (7, 1, 6)
    assert newsletter["bounce_rate"] == round(1 / 7, 4)

    assert report["second_sale"] == [
        {
            "reached_by_welcome": True,
            "customers": 3,
            "bought_again": 1,
            "share": 0.3333,
            "median_days_to_second": 15.9,  # 4 January 15:00 to 20 January 12:00
        },
        {
            "reached_by_welcome": False,
            "customers": 0,
            "bought_again": 0,
            "share": None,
            "median_days_to_second": None,
        },
    ]
    listening = report["listening"]
    assert listening["answers"] == {"first_bag": {"poor": 1}}
    assert listening["replies_by_campaign"]["welcome"] == 1
    assert [w["email"] for w in listening["waiting_replies"]] == ["ada@example.com"]
    assert listening["waiting_count"] == 1

    # Once a person has answered Ada, she leaves the to-do.
    done = shop.ok("--now", LATER, "customers", "answered", "ada@example.com")
    assert "1 reply marked answered" in done.output
    again = json.loads(shop.ok("--now", LATER, "stats", "--json").output)
    assert again["listening"]["waiting_count"] == 0
    assert count_rows(shop, inbound_messages) == 2


def test_one_campaign_since_a_date(module_shop: Shop) -> None:
    """`stats welcome --since` counts only that campaign's emails sent since then."""
    report = json.loads(
        module_shop.ok("--now", LATER, "stats", "welcome", "--since", "2027-01-10", "--json").output
    )
    assert [c["campaign"] for c in report["campaigns"]] == ["welcome"]
    thanks, offers = report["campaigns"][0]["steps"]
    assert (thanks["sent"], offers["sent"]) == (0, 3)
    assert thanks["open_rate"] is None  # nothing delivered in the window: no rate


def test_the_table_on_a_terminal(module_shop: Shop) -> None:
    """Without --json: a table per campaign with the people's rates, and what machines did
    kept apart in a line of its own."""
    out = module_shop.ok("--now", LATER, "stats").output
    assert "welcome" in out
    assert "second-sale" in out
    assert "variant 1" in out
    for column in ("sent", "deliv.", "opened", "clicked", "replied", "converted", "revenue"):
        assert column in out
    assert "apart: 0 machine opens, 0 scanner clicks" in out
    assert "not enough data yet (each variant needs 100 delivered" in out
    assert "Second sale, reached by the welcome sequence: 1 of 3 bought again" in out


def test_bad_arguments_are_one_line_and_exit_2(module_shop: Shop) -> None:
    """An unknown campaign, a bad date or duration: one line naming it, exit 2."""
    for args, words in (
        (["stats", "nope"], "no campaign named 'nope'"),
        (["stats", "--since", "yesterday-ish"], "--since"),
        (["stats", "--cadence", "six weeks"], "--cadence"),
        (["customers", "answered", "nobody@example.com"], "no such customer"),
        (["customers", "top", "--percent", "0"], "--percent"),
    ):
        result = module_shop.run("--now", LATER, *args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output
        assert "Traceback" not in result.output


def test_customers_not_heard_from_in_six_weeks(module_shop: Shop) -> None:
    """`--cadence 6w`: subscribed customers whose last email is older than that and who
    have nothing planned within it, by address; an unsubscribed customer is not listed."""
    module_shop.ok("--now", LATER, "customers", "unsubscribe", "hiro@example.com")
    report = json.loads(
        module_shop.ok("--now", "2027-03-15T12:00:00Z", "stats", "--cadence", "6w", "--json").output
    )
    cadence = report["cadence"]
    assert cadence["interval_days"] == 42
    # The last emails went out on day 15 (the offers, the first newsletter); Ada's VIP
    # welcome is planned (due, the daemon has not run since): she is not silent.
    assert cadence["customers"] == [
        {"email": f"{name}@example.com", "last_email": "2027-01-19T18:00:00+00:00"}
        for name in ("grace", "linus", "maria", "sam", "zoe")
    ]
    assert cadence["count"] == 5
    out = module_shop.ok("--now", "2027-03-15T12:00:00Z", "stats", "--cadence", "6w").output
    assert "Not emailed for over 42 days, nothing planned: 5 (grace@example.com," in out
    # Within six weeks of day 15, nobody is silent.
    early = module_shop.ok("--now", "2027-02-20T12:00:00Z", "stats", "--cadence", "6w", "--json")
    assert json.loads(early.output)["cadence"]["count"] == 0


def test_the_best_customers_and_their_share(module_shop: Shop) -> None:
    """`customers top`: Ada spent 54.50 of the shop's 103.50; the top 20% is her alone."""
    out = module_shop.ok("--now", LATER, "customers", "top").output
    assert "ada@example.com" in out
    assert "The top 20% (1 of 7 customers) bring 53% of revenue (54.50 of 103.50" in out
    top = module_shop.ok("--now", LATER, "customers", "top", "--percent", "50", "--json")
    data = json.loads(top.output)
    assert [r["email"] for r in data["listed"]] == [
        "ada@example.com",
        "grace@example.com",
        "linus@example.com",
    ]
    assert (data["customers"], data["of"], data["share_of_revenue"]) == (3, 7, 1.0)
    assert data["listed"][0]["spend_rank"] == 1
    assert data["listed"][1]["spend_rank"] == data["listed"][2]["spend_rank"] == 2
