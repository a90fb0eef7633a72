"""The HTML's `lang` is the language the campaign is written in (DESIGN 15: `language:`,
else `[company] language`), set per email in a template compiled once; a template that
names its own language keeps it; the customer's locale never changes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dripper.render.compiler import Mode
from dripper.render.lang import html_lang, with_root_lang
from tests.unit.test_render_support import customer, make_renderer, render

FOOT = "<p>{{ company.postal_address }} <a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"


def _langs(html: str) -> list[str]:
    """The value of every lang attribute of the email, in order."""
    return re.findall(r'\slang="([^"]*)"', html)


@pytest.mark.parametrize(
    ("language", "locale", "expected"),
    [(None, "ja", "en"), (None, None, "en"), ("de", "en-GB", "de"), ("pt-BR", "da", "pt-BR")],
)
def test_an_mjml_email_carries_the_campaigns_language(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    language: str | None,
    locale: str | None,
    expected: str,
) -> None:
    """MJML's `<html lang="und">` and its wrapper's lang become the language the campaign
    is written in (`language:`, else `[company] language`, else en), whatever the
    customer's locale (DESIGN 15: an English email is read in an English voice)."""
    renderer = make_renderer(tmp_path, monkeypatch)
    mail = render(renderer, who=customer(locale=locale), language=language)
    assert mail.html.startswith(f'<!doctype html><html lang="{expected}" ')
    assert _langs(mail.html) == [expected, expected]


def test_one_compile_serves_every_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Campaigns of different languages share one compiled template: only Jinja runs."""
    renderer = make_renderer(tmp_path, monkeypatch)
    german = render(renderer, language="de")
    english = render(renderer, who=customer(locale="pt_BR"))
    assert renderer.template("welcome.mjml").mode is Mode.COMPILED
    assert renderer.compiles == 1
    assert _langs(german.html) == ["de", "de"]
    assert _langs(english.html) == ["en", "en"]


def test_an_html_email_carries_the_campaigns_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .html template whose <html> names no language gets the campaign's."""
    page = f"<!DOCTYPE html>\n<html><head></head><body><p>Hi</p>{FOOT}</body></html>"
    renderer = make_renderer(tmp_path, monkeypatch, {"page.html": page})
    mail = render(renderer, "page.html", who=customer(locale="en_GB"), language="nl")
    assert '<html lang="nl">' in mail.html
    assert renderer.compiles == 1


def test_a_per_email_template_carries_the_campaigns_language(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates compiled per email (Jinja where MJML computes layout) get it too."""
    source = (
        '<mjml><mj-body><mj-section padding="{{ 10 }}px"><mj-column><mj-text>Hi</mj-text>'
        f"<mj-text>{FOOT}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"layout-jinja.mjml": source})
    mail = render(renderer, "layout-jinja.mjml", who=customer(locale="en-GB"), language="fr")
    assert renderer.template("layout-jinja.mjml").mode is Mode.PER_EMAIL
    assert _langs(mail.html) == ["fr", "fr"]


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("fr.mjml", f'<mjml lang="fr"><mj-body><mj-text>Salut {FOOT}</mj-text></mj-body></mjml>'),
        ("fr.html", f'<html lang="fr"><body><p>Salut</p>{FOOT}</body></html>'),
    ],
)
def test_a_template_that_names_its_language_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str
) -> None:
    """A template written in French says so itself; the customer's locale does not
    override what its author declared."""
    renderer = make_renderer(tmp_path, monkeypatch, {name: source})
    mail = render(renderer, name, who=customer(locale="en-GB"))
    assert set(_langs(mail.html)) == {"fr"}


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en-GB", "en-GB"),
        ("en_gb", "en-GB"),
        ("pt_BR", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("de_DE.UTF-8", "de-DE"),
        ("sr_RS@latin", "sr-RS"),
        ("EN", "en"),
        (None, "und"),
        ("", "und"),
        ("english", "und"),
        ('en" onload="x', "und"),
        (42, "und"),
    ],
)
def test_html_lang_writes_a_language_tag(locale: object, expected: str) -> None:
    """Locales become BCP 47 tags in their usual case; anything else is `und`."""
    assert html_lang(locale) == expected


def test_the_root_is_found_by_parsing_not_by_searching() -> None:
    """A `<mjml>` inside a comment before the root is not mistaken for it; a root that
    already has a lang is left as it is."""
    source = "<!-- <mjml> -->\n<mjml owa='desktop'><mj-body></mj-body></mjml>"
    assert with_root_lang(source, "en-GB") == (
        "<!-- <mjml> -->\n<mjml lang=\"en-GB\" owa='desktop'><mj-body></mj-body></mjml>"
    )
    named = '<mjml lang="fr"><mj-body></mj-body></mjml>'
    assert with_root_lang(named, "en-GB") == named
