"""The `/stats` page of `dripper preview --serve`: the numbers of `dripper stats` as
pictures, drawn here as SVG so the page needs no script and no chart library.

Pure: the report of `services.stats.collect` (and the human opens and clicks per day) in,
an HTML fragment out. Every SVG scales to its container (`viewBox`, width 100%), so the page
never scrolls sideways on a phone. Every text that came from the database is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

# The funnel of one step, as people move down it (all human: machines are kept apart).
FUNNEL = (
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("unique_opens", "opened"),
    ("unique_clicks", "clicked"),
    ("replies", "replied"),
    ("conversions", "converted"),
)
RATES = (("open_rate", "opened"), ("click_rate", "clicked"), ("conversion_rate", "converted"))
COLOURS = ("#8a5a44", "#3f7f8c", "#c89b3c", "#6b8f4e", "#9c5f9e", "#5e6b7d")

STYLE = """
.stats h2 { margin: 28px 0 4px; }
.stats h3 { margin: 18px 0 4px; font-size: 16px; }
.stats svg { width: 100%; height: auto; display: block; max-width: 600px; }
.stats .note { color: #666; font-size: 13px; max-width: 600px; }
.stats table.nums { border-collapse: collapse; font-size: 13px; margin: 6px 0;
  display: block; overflow-x: auto; max-width: 100%; }
.stats table.nums td, .stats table.nums th { padding: 2px 8px; text-align: right;
  white-space: nowrap; }
.stats table.nums td:first-child, .stats table.nums th:first-child { text-align: left; }
"""


def stats_html(report: Mapping[str, Any], daily: Mapping[str, Mapping[str, int]]) -> str:
    """The whole page body."""
    parts = ["<div class='stats'>"]
    parts.append(
        "<p class='note'>Counted from what was recorded. Opens and clicks are people's: "
        "machine opens (Apple Mail Privacy Protection, prefetchers) and scanner clicks are "
        "counted apart and never in a rate. Rates are fractions of delivered emails.</p>"
    )
    parts.append("<h2>Opens and clicks over time</h2>")
    parts.append(timeline_svg(daily))
    if not report.get("campaigns"):
        parts.append("<p>Nothing sent yet.</p>")
    for campaign in report.get("campaigns", []):
        parts.append(f"<h2>{_e(campaign['campaign'])}</h2>")
        for step in campaign["steps"]:
            parts.append(f"<h3>{_e(step['step'])}</h3>")
            if not step.get("sent") and not step.get("failed"):
                parts.append("<p class='note'>Nothing sent yet.</p>")
                continue
            parts.append(funnel_svg(step))
            parts.append(_machines(step))
            variants = [v for v in campaign["variants"] if v["step"] == step["step"]]
            if variants:
                parts.append(variants_svg(variants))
                parts.append(_verdict(variants))
    parts.append(_listening(report))
    parts.append("</div>")
    return "".join(parts)


def funnel_svg(row: Mapping[str, Any]) -> str:
    """One bar per stage, as long as its count is a share of sent."""
    width, bar, gap, label = 480, 22, 8, 90
    top = max(int(row.get("sent") or 0), 1)
    height = len(FUNNEL) * (bar + gap) + gap
    items = []
    for index, (key, name) in enumerate(FUNNEL):
        value = int(row.get(key) or 0)
        y = gap + index * (bar + gap)
        length = round((width - label - 110) * value / top)
        share = f"{100 * value / top:.0f}%" if row.get("sent") else "-"
        items.append(
            f"<text x='0' y='{y + 16}' font-size='14'>{name}</text>"
            f"<rect x='{label}' y='{y}' width='{max(length, 1)}' height='{bar}' "
            f"fill='{COLOURS[index % len(COLOURS)]}' rx='3'><title>{name}: {value:,}</title></rect>"
            f"<text x='{label + max(length, 1) + 6}' y='{y + 16}' font-size='14'>"
            f"{value:,} ({share})</text>"
        )
    return _svg(width, height, "".join(items), f"funnel of {row.get('step', '')}")


def variants_svg(variants: Sequence[Mapping[str, Any]]) -> str:
    """For each rate, the variants' bars side by side (0-100% of delivered)."""
    group_gap, bar, base, chart = 40, 26, 200, 160
    count = len(variants)
    group = count * bar + group_gap
    width = max(60 + len(RATES) * group, 60 + count * 130)
    peak = max(
        [float(v.get(key) or 0.0) for v in variants for key, _ in RATES] + [0.01]
    )  # the tallest bar fills the chart
    items = []
    for g, (key, name) in enumerate(RATES):
        x0 = 60 + g * group
        for i, variant in enumerate(variants):
            rate = float(variant.get(key) or 0.0)
            h = round(chart * rate / peak)
            x = x0 + i * bar
            items.append(
                f"<rect x='{x}' y='{base - h}' width='{bar - 4}' height='{max(h, 1)}' "
                f"fill='{COLOURS[i % len(COLOURS)]}'><title>variant {variant['variant']}, "
                f"{name}: {100 * rate:.1f}%</title></rect>"
                f"<text x='{x + (bar - 4) / 2}' y='{base - h - 4}' font-size='10' "
                f"text-anchor='middle'>{100 * rate:.0f}%</text>"
            )
        items.append(
            f"<text x='{x0 + (count * bar) / 2}' y='{base + 18}' font-size='13' "
            f"text-anchor='middle'>{name}</text>"
        )
    legend = "".join(
        f"<rect x='{60 + i * 130}' y='{base + 32}' width='12' height='12' "
        f"fill='{COLOURS[i % len(COLOURS)]}'/><text x='{78 + i * 130}' y='{base + 43}' "
        f"font-size='13'>variant {v['variant']} (n={int(v.get('delivered') or 0):,})</text>"
        for i, v in enumerate(variants)
    )
    items.append(f"<line x1='50' y1='{base}' x2='{width}' y2='{base}' stroke='#999'/>")
    return _svg(width, base + 56, "".join(items) + legend, "variants side by side")


def timeline_svg(daily: Mapping[str, Mapping[str, int]]) -> str:
    """People's opens and clicks per day with any, as a pair of bars each (one day or a
    year of them read the same way)."""
    if not daily:
        return "<p class='note'>No opens or clicks recorded yet.</p>"
    width, left, bottom, top = 480, 44, 170, 24
    days = sorted(daily)
    peak = max(max(daily[d].get("open", 0), daily[d].get("click", 0)) for d in days) or 1
    slot = (width - left - 10) / len(days)
    bar = max(min(slot * 0.4, 40), 0.5)
    items = [
        f"<line x1='{left}' y1='{bottom}' x2='{width - 10}' y2='{bottom}' stroke='#999'/>",
        f"<text x='{left - 6}' y='{top + 4}' font-size='12' text-anchor='end'>{peak:,}</text>",
        f"<text x='{left - 6}' y='{bottom}' font-size='12' text-anchor='end'>0</text>",
        f"<text x='{left}' y='{bottom + 18}' font-size='12'>{_e(days[0])}</text>",
    ]
    if len(days) > 1:
        items.append(
            f"<text x='{width - 10}' y='{bottom + 18}' font-size='12' text-anchor='end'>"
            f"{_e(days[-1])}</text>"
        )
    for i, day in enumerate(days):
        for j, (kind, colour) in enumerate((("open", COLOURS[0]), ("click", COLOURS[1]))):
            value = daily[day].get(kind, 0)
            h = (bottom - top) * value / peak
            x = left + i * slot + (slot - 2 * bar) / 2 + j * bar
            items.append(
                f"<rect x='{x:.1f}' y='{bottom - h:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{colour}'><title>{_e(day)}: {value:,} {kind}s</title></rect>"
            )
    items.append(
        f"<rect x='{left + 10}' y='2' width='12' height='12' fill='{COLOURS[0]}'/>"
        f"<text x='{left + 28}' y='12' font-size='12'>opens (people)</text>"
        f"<rect x='{left + 140}' y='2' width='12' height='12' fill='{COLOURS[1]}'/>"
        f"<text x='{left + 158}' y='12' font-size='12'>clicks (people)</text>"
    )
    return _svg(width, bottom + 24, "".join(items), "opens and clicks per day")


def _machines(row: Mapping[str, Any]) -> str:
    return (
        f"<p class='note'>Kept apart: {int(row.get('opens_machine') or 0):,} machine opens, "
        f"{int(row.get('clicks_scanner') or 0):,} scanner clicks; "
        f"{int(row.get('bounced') or 0):,} bounced, {int(row.get('failed') or 0):,} failed, "
        f"{int(row.get('unsubscribes') or 0):,} unsubscribed, "
        f"{int(row.get('complaints') or 0):,} complaints; revenue "
        f"{float(row.get('revenue') or 0):,.2f}.</p>"
    )


def _verdict(variants: Sequence[Mapping[str, Any]]) -> str:
    if any(v.get("chance_best") is None for v in variants):
        sizes = ", ".join(f"{int(v.get('delivered') or 0):,}" for v in variants)
        return (
            "<p class='note'>Which variant is best: not enough data yet (each needs 100 "
            f"delivered; they have {sizes}).</p>"
        )
    odds = ", ".join(
        f"variant {v['variant']}: {100 * float(v['chance_best']):.0f}%" for v in variants
    )
    return (
        f"<p class='note'>Chance of being best on {_e(variants[0].get('chance_on', ''))}: "
        f"{odds}.</p>"
    )


def _listening(report: Mapping[str, Any]) -> str:
    listening = report.get("listening") or {}
    parts = ["<h2>Listening</h2>"]
    answers = listening.get("answers") or {}
    for question, counts in sorted(answers.items()):
        rows = "".join(
            f"<tr><td>{_e(answer)}</td><td>{int(n):,}</td></tr>"
            for answer, n in sorted(counts.items())
        )
        parts.append(
            f"<table class='nums'><tr><th>{_e(question)}</th><th>answers</th></tr>{rows}</table>"
        )
    waiting = listening.get("waiting_replies") or []
    if waiting:
        rows = "".join(
            f"<tr><td>{_e(w['email'])}</td><td>{int(w['replies'])}</td>"
            f"<td>{_e(w['last_subject'])}</td></tr>"
            for w in waiting
        )
        parts.append(
            f"<p>Replies nobody has answered yet: {int(listening.get('waiting_count', 0)):,}</p>"
            f"<table class='nums'><tr><th>customer</th><th>replies</th><th>latest</th></tr>"
            f"{rows}</table>"
        )
    second = report.get("second_sale") or []
    for group in second:
        if group.get("customers"):
            who = "reached by the welcome sequence" if group["reached_by_welcome"] else "not"
            share = group.get("share")
            parts.append(
                f"<p>Second sale, {who}: {int(group['bought_again']):,} of "
                f"{int(group['customers']):,} bought again"
                + (f" ({100 * float(share):.0f}%)" if share is not None else "")
                + "</p>"
            )
    return "".join(parts)


def _svg(width: int, height: int, inner: str, label: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='{_e(label)}' font-family='system-ui, sans-serif'>{inner}</svg>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
