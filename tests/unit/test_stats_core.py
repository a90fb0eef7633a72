"""The pure arithmetic of `dripper stats`: rates of delivered emails with machines kept
apart, which A/B variant is likely best, the longest silence in a timeline, and the SVG
pictures of the preview's /stats page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import html as lxml_html

from dripper.engine.cadence import SLACK, longest_silences
from dripper.engine.stats import MIN_DELIVERED, Funnel, chances, median_days, share
from dripper.preview.stats_page import funnel_svg, stats_html, timeline_svg

T0 = datetime(2027, 1, 4, 9, tzinfo=UTC)


def test_rates_are_fractions_of_delivered_and_ignore_machines() -> None:
    """Bounced emails leave `delivered`; machine opens and scanner clicks never reach a rate."""
    row = Funnel(
        sent=10,
        bounced=2,
        opens_human=7,
        opens_machine=50,
        unique_opens=4,
        clicks_human=3,
        clicks_scanner=40,
        unique_clicks=2,
        conversions=1,
    )
    found = row.as_row()
    assert found["delivered"] == 8
    assert found["open_rate"] == 0.5
    assert found["click_rate"] == 0.25
    assert found["conversion_rate"] == 0.125
    assert found["bounce_rate"] == 0.2
    assert Funnel().rates()["open_rate"] is None  # nothing delivered: no rate, not 0


def test_funnels_add_up_field_by_field() -> None:
    """A step's row is the sum of its variants' rows."""
    total = Funnel()
    total.add(Funnel(sent=3, unique_opens=1, revenue=12.5))
    total.add(Funnel(sent=4, unique_opens=2, revenue=7.5))
    assert (total.sent, total.unique_opens, total.revenue) == (7, 3, 20.0)


def test_no_chance_is_given_below_the_minimum_sample() -> None:
    """Under MIN_DELIVERED per variant the answer is "not enough data", not a guess."""
    odds = chances({0: Funnel(sent=MIN_DELIVERED - 1), 1: Funnel(sent=5000)})
    assert not odds.enough
    assert odds.chance_best == {0: None, 1: None}
    assert odds.samples == {0: MIN_DELIVERED - 1, 1: 5000}


def test_a_clear_winner_on_conversions() -> None:
    """30 of 1,000 against 10 of 1,000 conversions: the first is best with near certainty,
    and the chances of all variants add up to one."""
    odds = chances(
        {
            0: Funnel(sent=1000, conversions=30, unique_clicks=10),
            1: Funnel(sent=1000, conversions=10, unique_clicks=90),
        }
    )
    assert odds.metric == "conversions"
    assert odds.chance_best[0] is not None
    assert odds.chance_best[0] > 0.99
    assert abs(sum(v for v in odds.chance_best.values() if v is not None) - 1) < 0.01


def test_clicks_decide_while_nobody_converted() -> None:
    """With no conversion anywhere, the human click rate is compared instead."""
    odds = chances({0: Funnel(sent=500, unique_clicks=5), 1: Funnel(sent=500, unique_clicks=40)})
    assert odds.metric == "human clicks"
    assert odds.chance_best[1] is not None
    assert odds.chance_best[1] > 0.99


def test_equal_variants_are_a_coin_toss_and_the_answer_is_repeatable() -> None:
    """Identical data gives about even chances, the same ones every time (seeded)."""
    data = {0: Funnel(sent=400, unique_clicks=20), 1: Funnel(sent=400, unique_clicks=20)}
    first = chances(data)
    assert first == chances(data)
    assert first.chance_best[0] is not None
    assert 0.45 < first.chance_best[0] < 0.55


def test_median_and_share() -> None:
    """Median days to the second sale; shares round to four places; nothing of nothing is None."""
    assert median_days([3.0, 10.0, 40.0]) == 10.0
    assert median_days([]) is None
    assert share(2, 3) == 0.6667
    assert share(1, 0) is None


def test_the_longest_silence_counts_the_start_and_end_of_the_window() -> None:
    """Silence runs from the window's start to the first send, between sends, and from the
    last send to the window's end; a customer with no send is silent throughout."""
    end = T0 + timedelta(days=365)
    found = longest_silences(
        {
            "often@example.com": [T0 + timedelta(days=d) for d in range(0, 366, 30)],
            "gap@example.com": [T0 + timedelta(days=10), T0 + timedelta(days=100)],
            "never@example.com": [],
        },
        start=T0,
        end=end,
        longer_than=timedelta(weeks=6),
    )
    assert [(s.email, s.length.days) for s in found] == [
        ("never@example.com", 365),
        ("gap@example.com", 265),
    ]


def test_a_send_an_hour_late_across_daylight_saving_is_on_time() -> None:
    """Six weeks and an hour (a 9:00 local send across a DST change) is not a silence; six
    weeks and a day and more is."""
    cadence = timedelta(weeks=6)
    late = {"a@example.com": [T0, T0 + cadence + timedelta(hours=1)]}
    end = T0 + cadence + timedelta(hours=1)
    assert longest_silences(late, start=T0, end=end, longer_than=cadence) == []
    much_later = T0 + cadence + SLACK + timedelta(hours=1)
    silent = {"a@example.com": [T0, much_later]}
    assert len(longest_silences(silent, start=T0, end=much_later, longer_than=cadence)) == 1


def _row(**counts: int) -> dict[str, object]:
    funnel = Funnel()
    for name, value in counts.items():
        setattr(funnel, name, value)
    return {"step": "thank-you", "variant": None, **funnel.as_row()}


def test_the_stats_page_draws_svg_and_needs_no_script() -> None:
    """Bars, variants and the timeline are inline SVG scaled to their box; no script."""
    step = _row(sent=10, unique_opens=4, unique_clicks=2)
    report: dict[str, Any] = {
        "campaigns": [
            {
                "campaign": "welcome",
                "steps": [step],
                "variants": [
                    {**_row(sent=5, unique_clicks=2), "variant": 0, "chance_best": None},
                    {**_row(sent=5), "variant": 1, "chance_best": None},
                ],
            }
        ],
        "second_sale": [],
        "listening": {"answers": {"first_bag": {"great": 3}}, "waiting_replies": []},
    }
    page = stats_html(report, {"2027-01-05": {"open": 3, "click": 1}, "2027-01-06": {"open": 1}})
    tree = lxml_html.fromstring(page)
    assert tree.xpath("//script") == []
    svgs = tree.xpath("//svg")
    assert len(svgs) == 3  # the timeline, the funnel, the variants
    assert all(svg.get("viewbox") or svg.get("viewBox") for svg in svgs)
    assert "not enough data yet" in page
    assert "4 (40%)" in funnel_svg(step)


def test_the_stats_page_escapes_what_came_from_the_database() -> None:
    """An answer or step name with markup in it is text on the page, never markup."""
    hostile = "<img src=x onerror=alert(1)>"
    report = {
        "campaigns": [{"campaign": hostile, "steps": [_row(sent=1)], "variants": []}],
        "listening": {"answers": {hostile: {hostile: 1}}, "waiting_replies": []},
    }
    page = stats_html(report, {})
    tree = lxml_html.fromstring(page)
    assert tree.xpath("//img") == []
    assert hostile in tree.text_content()
    assert "No opens or clicks recorded yet" in timeline_svg({})
