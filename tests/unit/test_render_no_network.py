"""Rendering never opens a connection: a corpus of ways to make the CSS inliner (or
anything else in the pipeline) fetch a URL, aimed at a real listening socket that must
see no connection at all (issue 9, item 11)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dripper.render.compiler import Mode
from dripper.render.inline import inline_css, make_premailer
from tests.unit.test_render_support import Listener, customer, make_renderer, render

# Each case: a name and a piece of HTML with URL where the listener's address goes. Most
# go in <head>; BODY: cases go in <body>.
HTML_CASES = {
    "style-attr-gt": '<style data-x=">">@import url(URL);</style>',
    "style-attr-gt-single": "<style title='a>b'>@import \"URL\";</style>",
    "style-attr-gt-unquoted-next": '<style data-x=">" media="screen">@import url(URL);</style>',
    "upper-case": "<STYLE>@IMPORT url(URL);</STYLE>",
    "mixed-case-close": "<Style>@Import 'URL';</sTyLe >",
    "html-comment-in-style": "<style><!-- @import url(URL); --></style>",
    "css-comments": "<style>/* a */@import/* b */url(URL)/* c */;</style>",
    "css-escape-i": r"<style>@\69mport url(URL);</style>",
    "css-escape-long": r"<style>@\000069mport url(URL);</style>",
    "css-escape-middle": r"<style>@imp\ort url(URL);</style>",
    "import-in-media": "<style>@media screen { @import url(URL); p { color: red } }</style>",
    "import-in-supports": "<style>@supports (display: grid) { @import url(URL); }</style>",
    "import-string-double": '<style>@import "URL";</style>',
    "import-string-single": "<style>@import 'URL' screen;</style>",
    "import-url-quoted": "<style>@import url('URL') all;</style>",
    "import-after-rules": "<style>p { color: red } @import url(URL);</style>",
    "import-after-charset": '<style>@charset "utf-8"; @import url(URL);</style>',
    "import-relative-with-base": '<base href="URL/"><style>@import "relative.css";</style>',
    "import-protocol-relative": "<style>@import url(//127.0.0.1:PORT/pr.css);</style>",
    "cdata-in-style": "<style><![CDATA[ @import url(URL); ]]></style>",
    "style-in-style": "<style><style>@import url(URL);</style></style>",
    "unclosed-style": "<style>@import url(URL);",  # the rest of the page is its CSS
    "style-media-all": '<style media="all">@import url(URL);</style>',
    "font-face": "<style>@font-face { font-family: x; src: url(URL) }</style>",
    "link-stylesheet": '<link rel="stylesheet" href="URL">',
    "link-stylesheet-upper": '<LINK REL="STYLESHEET" HREF="URL">',
    "link-alternate": '<link rel="alternate stylesheet" href="URL">',
    "link-preload": '<link rel="preload" as="style" href="URL">',
    "link-import": '<link rel="import" href="URL">',
    "link-protocol-relative": '<link rel="stylesheet" href="//127.0.0.1:PORT/lpr.css">',
    "xml-stylesheet-pi": '<?xml-stylesheet type="text/css" href="URL"?>',
    "BODY:link-stylesheet": '<link rel="stylesheet" href="URL"><p>x</p>',
    "BODY:style": '<style data-x=">">@import url(URL); p { color: red }</style><p>x</p>',
    "BODY:svg-style": "<svg><style>@import url(URL); circle { fill: red }</style></svg>",
    "BODY:math-style": "<math><style>@import url(URL);</style></math>",
    "BODY:noscript-style": "<noscript><style>@import url(URL);</style></noscript>",
    "BODY:template-style": "<template><style>@import url(URL);</style></template>",
    "BODY:style-attribute": '<p style="background: url(URL); color: red">x</p>',
    "BODY:style-attribute-import": '<p style="@import url(URL); color: red">x</p>',
    "BODY:img": '<img src="URL" style="float: left">',
    "BODY:background": '<table background="URL"><tr><td>x</td></tr></table>',
}


def _styles(html: str) -> list[str]:
    """The text of every <style> element of `html`, as an HTML parser finds them."""
    found: list[str] = []

    class Styles(HTMLParser):
        inside = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.inside = tag == "style"

        def handle_endtag(self, tag: str) -> None:
            self.inside = False

        def handle_data(self, data: str) -> None:
            if self.inside:
                found.append(data)

    Styles().feed(html)
    return found


def _document(name: str, snippet: str, listener: Listener) -> str:
    url = f"{listener.base}/{name}.css"
    snippet = snippet.replace("URL", url).replace("PORT", str(listener.port))
    head, body = ("", snippet) if name.startswith("BODY:") else (snippet, "")
    return (
        "<!DOCTYPE html>\n<html><head><title>t</title>\n"
        "<style>p.lead { color: #123456 } @media (max-width: 480px) { p { margin: 0 } }</style>\n"
        f'{head}\n</head><body>\n<p class="lead">Hello</p>\n{body}\n</body></html>'
    )


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback socket that records every connection; closed after the test."""
    server = Listener()
    try:
        yield server
    finally:
        server.close()


def test_the_listener_sees_a_real_fetch(listener: Listener) -> None:
    """The socket does record a fetch, so a test that finds none can fail."""
    with pytest.raises(ConnectionError):  # it hangs up: a connection is all it needs
        urllib.request.urlopen(f"{listener.base}/probe.css", timeout=5)
    assert listener.connections() == ["GET /probe.css HTTP/1.1"]


@pytest.mark.parametrize("name", sorted(HTML_CASES))
def test_inline_css_opens_no_connection(listener: Listener, name: str) -> None:
    """inline_css on each bypass attempt leaves the listener untouched, still inlines the
    ordinary rules, and keeps no @import in the result."""
    html = inline_css(_document(name, HTML_CASES[name], listener))
    assert listener.connections() == []
    if name != "unclosed-style":
        assert 'style="color:#123456"' in html
        assert "@media" in html
    for style in _styles(html):  # what the recipient's client gets: no import left either
        assert f"127.0.0.1:{listener.port}" not in style
        assert "mport" not in style.lower().replace("!important", "")  # nor @\\69mport


def test_premailer_alone_refuses_every_fetch(listener: Listener) -> None:
    """The second layer holds without the first: the inliner's premailer, fed @import and
    <link> untouched by the clean-up, still fetches nothing."""
    snippets = "\n".join(
        _document(name, snippet, listener).split("<head>", 1)[1].split("</head>", 1)[0]
        for name, snippet in sorted(HTML_CASES.items(), key=lambda case: "unclosed" in case[0])
        if not name.startswith("BODY:")  # the unclosed <style> last: it swallows the rest
    )
    page = f"<html><head>{snippets}</head><body><p class='lead'>x</p></body></html>"
    make_premailer(page).transform()
    assert listener.connections() == []


@pytest.mark.parametrize("name", sorted(HTML_CASES))
def test_rendering_an_html_template_opens_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener, name: str
) -> None:
    """A whole .html template with the bypass attempt, compiled and rendered twice by the
    Renderer, opens no connection."""
    page = _document(name, HTML_CASES[name], listener).replace(
        "<p>x</p>", "<p>x {{ company.postal_address }} <a href='{{ unsubscribe_url }}'>u</a></p>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"hostile.html": page})
    first = render(renderer, "hostile.html")
    render(renderer, "hostile.html")
    assert listener.connections() == []
    assert 'style="color:#123456"' in first.html or name == "unclosed-style"


def test_per_email_inlining_of_customer_css_opens_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    """A template inlined per email (Jinja in its CSS) with an @import smuggled in by a
    customer's own data opens no connection either."""
    page = (
        '<html><head><style data-x=">">{% if customer.first_name %}'
        "p { color: {{ customer.color }} }{% endif %}</style></head>"
        "<body><p>Hi</p></body></html>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"per-email.html": page})
    who = customer(attributes={"color": f"red }} @import url({listener.base}/data.css); p {{"})
    mail = render(renderer, "per-email.html", who=who)
    assert renderer.template("per-email.html").mode is Mode.PER_EMAIL
    assert listener.connections() == []
    assert "data.css" not in mail.html


MJML_CASES = {
    "mj-style": "<mj-head><mj-style>@import url(URL); p { color: red }</mj-style></mj-head>",
    "mj-style-inline": (
        '<mj-head><mj-style inline="inline">@import url(URL); p { color: red }</mj-style></mj-head>'
    ),
    "mj-font": (
        '<mj-head><mj-font name="Raleway" href="URL" />'
        '<mj-attributes><mj-all font-family="Raleway" /></mj-attributes></mj-head>'
    ),
    "mj-raw-head": '<mj-head><mj-raw><link rel="stylesheet" href="URL"></mj-raw></mj-head>',
    "mj-include-css": '<mj-head><mj-include path="hostile.css" type="css" /></mj-head>',
    "mj-include-css-inline": (
        '<mj-head><mj-include path="hostile.css" type="css" css-inline="inline" /></mj-head>'
    ),
}
MJML_BODY_CASES = {
    "mj-raw-style": '<mj-raw><style data-x=">">@import url(URL);</style></mj-raw>',
    "mj-raw-link": '<mj-raw><link rel="stylesheet" href="URL" /></mj-raw>',
    "mj-image": '<mj-section><mj-column><mj-image src="URL" /></mj-column></mj-section>',
    "mj-section-background": '<mj-section background-url="URL"><mj-column /></mj-section>',
}


def _mjml(name: str, listener: Listener) -> str:
    url = f"{listener.base}/{name}.css"
    head = MJML_CASES.get(name, "").replace("URL", url)
    body = MJML_BODY_CASES.get(name, "").replace("URL", url)
    return (
        f"<mjml>{head}<mj-body>{body}<mj-section><mj-column><mj-text>"
        "Hi {{ customer.first_name }}. {{ company.postal_address }} "
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a>'
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )


@pytest.mark.parametrize("name", sorted({*MJML_CASES, *MJML_BODY_CASES}))
def test_rendering_an_mjml_template_opens_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener, name: str
) -> None:
    """MJML's own ways to name a stylesheet (mj-style, mj-font, mj-raw, an included css
    file) are never fetched while compiling or rendering; mj-font stays a <link> for the
    recipient's mail client."""
    css = f"@import url({listener.base}/{name}-included.css); p {{ color: red }}"
    templates = {"hostile.mjml": _mjml(name, listener), "hostile.css": css}
    renderer = make_renderer(tmp_path, monkeypatch, templates)
    mail = render(renderer, "hostile.mjml")
    render(renderer, "hostile.mjml")
    assert listener.connections() == []
    if name == "mj-font":
        assert f'<link href="{listener.base}/mj-font.css"' in mail.html
