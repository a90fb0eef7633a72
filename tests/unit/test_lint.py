# ruff: noqa: E501 (the table of cases reads best one case a line)
"""The linter's rules (dripper/render/lint.py, DESIGN 15): each fires on an email that
breaks it and stays quiet on one that does not."""

from __future__ import annotations

import pytest

from dripper.render.lint import Finding, contrast, lint, parse_colour

GOOD_TEXT = "Hello Ada,\n\nYour coffee is on its way.\n"


def page(body: str, *, title: str = "Hi", lang: str = "en", head: str = "") -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><title>{title}</title>{head}</head>'
        f'<body style="background-color:#ffffff;color:#222222;font-size:16px">'
        f"<h1>Hi</h1>{body}</body></html>"
    )


def rules(html: str, text: str = GOOD_TEXT, *, subject: str = "Hi", kind: str = "mjml") -> set[str]:
    return {f.rule for f in lint(html, text, subject=subject, kind=kind)}


CASES = [  # one case a line: the rule, the broken email, the fixed one
    # rule, an email that breaks it, one that does not
    ("size", page("<p>" + "x " * 50_000 + "</p>"), page("<p>short</p>")),
    ("img-alt", page('<img src="https://acme.test/a.png">'), page('<img src="https://acme.test/a.png" alt="A bag">')),
    ("link-text", page('<a href="https://acme.test/guide">click here</a>'), page('<a href="https://acme.test/guide">Read the brewing guide</a>')),
    ("link-text", page('<a href="https://acme.test/x">https://acme.test/x</a>'), page('<a href="https://acme.test/x">Our shop</a>')),
    ("link-domain", page('<a href="https://evil.example/login">acme.test</a>'), page('<a href="https://shop.acme.test/">acme.test</a>')),
    ("unsafe-link", page('<a href="javascript:alert(1)">Go</a>'), page('<a href="https://acme.test/">Go</a>')),
    ("small-text", page('<p style="font-size:12px">Fine print</p>'), page('<p style="font-size:14px">Fine print</p>')),
    ("contrast", page('<p style="color:#cccccc">Faint</p>'), page('<p style="color:#555555">Readable</p>')),
    ("contrast", page('<div style="display:none;color:#ffffff">Preheader</div>'), page('<div style="display:none;color:#222222">Preheader</div>')),
    ("lang", page("<p>x</p>", lang="und"), page("<p>x</p>", lang="en")),
    ("title", page("<p>x</p>", title="Template title"), page("<p>x</p>", title="Hi")),
    ("long-word", page("<p>" + "a" * 45 + "</p>"), page("<p>" + "a" * 40 + "</p>")),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "bad", "good"), CASES)
def test_a_rule_fires_and_stays_quiet(rule: str, bad: str, good: str) -> None:
    """The rule names the broken email and not the fixed one."""
    assert rule in rules(bad)
    assert rule not in rules(good)


def test_no_heading() -> None:
    """An email without any heading; one with an <h2> is fine."""
    html = '<html lang="en"><head><title>Hi</title></head><body><p>x</p></body></html>'
    assert "heading" in rules(html)
    assert "heading" not in rules(html.replace("<p>x</p>", "<h2>x</h2>"))


def test_layout_tables_only_in_html_templates() -> None:
    """A table without role="presentation" in a .html template; with it, or in MJML's
    output (which adds it), nothing."""
    bad = page("<table><tr><td>x</td></tr></table>")
    assert "layout-table" in rules(bad, kind="html")
    assert "layout-table" not in rules(bad, kind="mjml")
    good = page('<table role="presentation"><tr><td>x</td></tr></table>')
    assert "layout-table" not in rules(good, kind="html")


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("word " * 60 + "\n", "text-line"),
        ("Share: https://acme.test/r/x\nhttps://acme.test/r/x\n", "text-repeat"),
        ("Share https://acme.test/r/x (https://acme.test/r/x)\n", "text-repeat"),
        ("   \n", "text-empty"),
        ("<p>Hello</p>\n", "text-markup"),
    ],
)
def test_text_part_rules(text: str, rule: str) -> None:
    """Long lines, a URL twice in a row, an empty text part and markup in it; the last
    two are errors, not warnings."""
    found = [f for f in lint(page("<p>x</p>"), text, subject="Hi") if f.rule == rule]
    assert found
    assert found[0].error is (rule in ("text-empty", "text-markup"))
    assert rule not in rules(page("<p>x</p>"), GOOD_TEXT)


def test_contrast_follows_the_cascade() -> None:
    """A colour and a background inherited from ancestors, as a browser sees them."""
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert parse_colour("#abc") == (170, 187, 204)
    assert parse_colour("rgb(1, 2, 3)") == (1, 2, 3)
    nested = page('<div style="background-color:#222222"><p><span>Dark on dark</span></p></div>')
    assert "contrast" in rules(nested)
    light = page('<div style="background-color:#222222;color:#ffffff"><p>Light on dark</p></div>')
    assert "contrast" not in rules(light)


def test_a_tracked_link_is_judged_by_its_target() -> None:
    """`target` gives where a redirect really goes: its domain is compared."""
    html = page('<a href="https://links.acme.test/c/token">acme.test</a>')
    found = lint(html, GOOD_TEXT, subject="Hi", target=lambda href: "https://evil.example/")
    assert any(f.rule == "link-domain" for f in found)
    assert isinstance(found[0], Finding)


def test_a_text_part_that_lost_most_of_the_body() -> None:
    """Ten words of text for an HTML of a hundred: a warning (a short .txt may be meant);
    the whole text: nothing."""
    body = "<p>" + "word " * 100 + "</p>"
    lost = lint(page(body), "Hello there\n", subject="Hi")
    assert [(f.rule, f.error) for f in lost if f.rule == "text-lost"] == [("text-lost", False)]
    whole = lint(page(body), "Hi\n\n" + "word " * 100 + "\n", subject="Hi")
    assert "text-lost" not in {f.rule for f in whole}


def test_dotted_words_name_no_domain() -> None:
    """ "Node.js tips", "e.g. our guide", "19.99", "U.S." link anywhere without a warning."""
    for text in ("Node.js tips", "e.g. our guide", "19.99", "U.S."):
        html = page(f'<a href="https://acme.test/">{text}</a>')
        assert "link-domain" not in rules(html), text
