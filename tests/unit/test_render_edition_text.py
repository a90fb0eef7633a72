"""A newsletter edition's text part is readable plain text, not raw Markdown (issue 9,
item 16a): no `##` or `**`, links as `text (url)`, lists kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dripper.campaigns.editions import load_edition, markdown_to_text
from dripper.errors import Problem
from tests.unit.test_render_support import NOW, Campaign, Step, customer, make_renderer

SAMPLE = """\
Most of it happens *before* the water touches the coffee.

## 1. Weigh, do not scoop

Start with **60 g of coffee per litre** (about 1:16).
Too bitter? Use a little less.

- **Espresso:** fine, like table salt
- **French press:** coarse
  - or a little finer for a short brew

1. Boil the kettle
2. Wait `30 s`

> Coffee is 98% water.

Read [our brewing guide](https://acme.test/guide), or mail <help@acme.test>.

    print("code stays as written")

***
![A kitchen scale](https://acme.test/scale.png)
"""

EXPECTED = """\
Most of it happens before the water touches the coffee.

1. Weigh, do not scoop
----------------------

Start with 60 g of coffee per litre (about 1:16).
Too bitter? Use a little less.

- Espresso: fine, like table salt
- French press: coarse
  - or a little finer for a short brew

1. Boil the kettle
2. Wait 30 s

> Coffee is 98% water.

Read our brewing guide (https://acme.test/guide), or mail help@acme.test.

print("code stays as written")

--------------------

A kitchen scale"""


def test_markdown_becomes_readable_plain_text() -> None:
    """Headings, emphasis, lists, quotes, links, code and images read as plain text."""
    assert markdown_to_text(SAMPLE) == EXPECTED


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("# Big news\n\nBody.", "Big news\n========\n\nBody."),
        ("### Small\n\nBody.", "Small\n\nBody."),
        ("Line one  \nline two", "Line one\nline two"),
        ("<https://acme.test/a>", "https://acme.test/a"),
        ("[![logo](l.png)](https://acme.test)", "logo (https://acme.test)"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("- loose\n\n- list", "- loose\n\n- list"),
        ("Intro\n- a\n- b\n\nAfter", "Intro\n\n- a\n- b\n\nAfter"),
        ("5 \\* 3 and \\## not a heading", "5 * 3 and ## not a heading"),
        ("Fish &amp; chips", "Fish & chips"),
    ],
)
def test_each_markdown_construct_reads_plainly(markdown: str, text: str) -> None:
    """One construct at a time: what it becomes in the text part."""
    assert markdown_to_text(markdown) == text


def test_a_loaded_edition_carries_the_plain_text(tmp_path: Path) -> None:
    """An edition file's `text` is the plain text; its HTML and Markdown are unchanged."""
    path = tmp_path / "01-better-cup.md"
    path.write_text(f"---\ntitle: A better cup\n---\n{SAMPLE}", encoding="utf-8")
    problems: list[Problem] = []
    edition = load_edition(path, "newsletters/01-better-cup.md", problems)
    assert problems == []
    assert edition is not None
    assert edition.text == EXPECTED
    assert edition.markdown == SAMPLE.strip("\n")
    assert "<strong>60 g of coffee per litre</strong>" in edition.html


@dataclass(frozen=True)
class _Edition:
    slug: str
    title: str
    html: str
    text: str


def test_the_emails_text_part_shows_the_plain_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the renderer, an edition dropped into an MJML template with
    `{{ edition.html|safe }}` reads as plain text in the text part: no `##`, no `**`."""
    path = tmp_path / "01-better-cup.md"
    path.write_text(f"---\ntitle: A better cup\n---\n{SAMPLE}", encoding="utf-8")
    edition = load_edition(path, "01-better-cup.md", [])
    assert edition is not None
    template = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>{{ edition.html|safe }}</mj-text>"
        '<mj-text>{{ company.postal_address }} <a href="{{ unsubscribe_url }}">Unsubscribe</a>'
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"news.mjml": template})
    mail = renderer.render(
        Campaign(),
        Step(template="news.mjml"),
        customer(),
        now=NOW,
        message_id=renderer.new_message_id(),
        edition=_Edition(edition.slug, edition.title, edition.html, edition.text),
    )
    assert "1. Weigh, do not scoop\n----------------------\n" in mail.text
    assert "Start with 60 g of coffee per litre (about 1:16)." in mail.text
    assert "- Espresso: fine, like table salt" in mail.text
    for marker in ("##", "**", "`", "]("):
        assert marker not in mail.text
