"""CSS inlining for `.html` templates with premailer, network-free by construction.

premailer with `allow_network=False` still lets cssutils fetch every `@import` it parses
(cssutils' default fetcher is urllib; it even fetches imports CSS says to ignore, such as
one after a rule), and it would fetch `<link rel=stylesheet>` if the flag were ever
flipped. Two layers, each enough on its own, keep dripper from ever opening a connection:

1. The HTML is parsed once with lxml's HTML parser, the one premailer uses, and premailer
   is handed that very tree, so what is cleaned is exactly what it reads (no second
   parser to disagree, no regular expression to outwit):
   - every `<link>` is lifted out of the tree while premailer runs and put back after it,
     so premailer never sees one (the recipient's mail client may still load a web font
     from it, as with MJML's `mj-font`; dripper never does);
   - every `<style>` element, wherever it sits (head, body, svg), loses its `@import`
     rules, found by cssutils' own parser so CSS escapes and comments cannot hide one.
2. premailer runs with no network, no external files, no base URL and a requests session
   that raises, and every stylesheet it parses goes through a cssutils parser whose
   fetcher refuses every URL.

Inlining happens once per template version (premailer costs ~16 ms a call). lxml,
premailer and cssutils are imported on first use: previews of MJML emails never load them.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from dripper.render.errors import RenderError


class NetworkRefused(RenderError):
    """Something in the inliner tried to reach the network."""


def _refuse_fetch(url: str) -> None:
    # cssutils treats None as "could not fetch" and carries on without the import.
    return None


def _css_parser(fetcher: Any = _refuse_fetch, validate: bool = False) -> Any:
    import cssutils

    cssutils.log.setLevel(logging.CRITICAL)  # it reports every placeholder as bad CSS
    # The fetcher must be a function: None would mean cssutils' default, urllib.
    return cssutils.CSSParser(fetcher=fetcher, validate=validate, raiseExceptions=False)


def drop_imports(css: str) -> str:
    """`css` without its `@import` rules (unchanged when it has none)."""
    if "@" not in css and "\\" not in css:
        return css
    attempted: list[str] = []

    def record(url: str) -> None:
        attempted.append(url)  # cssutils asks for every import it met, even misplaced ones

    sheet = _css_parser(record).parseString(css)
    imports = [rule for rule in sheet.cssRules if rule.type == rule.IMPORT_RULE]
    if not imports and not attempted:
        return css
    for rule in imports:
        sheet.deleteRule(rule)
    # Misplaced imports (after a rule) were already left out of the parsed sheet.
    serialized: bytes = sheet.cssText
    return serialized.decode("utf-8")


class _NoNetworkSession:
    """Stands in for premailer's requests session: any request is a bug, loudly."""

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        raise NetworkRefused(f"refused to fetch {url!r} while inlining CSS")

    def __getattr__(self, name: str) -> Any:
        raise NetworkRefused("the CSS inliner has no network")


@functools.cache
def _premailer_class() -> type[Any]:
    from premailer import Premailer

    class NetworkFreePremailer(Premailer):  # type: ignore[misc]  # premailer is untyped
        """premailer whose every way to load a stylesheet refuses."""

        def _parse_css_string(self, css_body: str, validate: bool = True) -> Any:
            # premailer's own uses cssutils.parseString, whose fetcher is urllib.
            return _css_parser(validate=validate).parseString(css_body)

        def _load_external(self, url: str) -> str:
            raise NetworkRefused(f"refused to load {url!r} while inlining CSS")

        def _load_external_url(self, url: str) -> str:
            raise NetworkRefused(f"refused to fetch {url!r} while inlining CSS")

    return NetworkFreePremailer


def make_premailer(html: Any = None) -> Any:
    """A premailer set up the one way dripper uses it: no network, no files, no base URL;
    classes kept, `!important` kept, placeholders left as they are."""
    return _premailer_class()(
        html=html,
        base_url=None,
        allow_network=False,
        allow_loading_external_files=False,
        external_styles=None,
        session=_NoNetworkSession(),
        disable_validation=True,  # validation drops values it does not know (placeholders)
        disable_link_rewrites=True,
        strip_important=False,
        remove_classes=False,
        cssutils_logging_level=logging.CRITICAL,
    )


def inline_css(html: str, lang: str | None = None) -> str:
    """Styles from `<style>` blocks moved into `style=""` attributes, network-free.
    Media queries and other rules that cannot be inlined stay in a `<style>` block.
    `lang`, when given, becomes the `<html lang>` unless the template sets its own."""
    from lxml import etree

    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    stripped = html.strip()
    try:
        tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
        page = tree.getroot()
        held = _hold_links(page, etree.Comment)
        for style in page.iter("style"):
            if style.text:
                style.text = drop_imports(style.text)
        make_premailer().transform(page)
        for placeholder, link in held:
            _swap(placeholder, link)
        if lang and page.tag == "html" and "lang" not in page.attrib:
            page.set("lang", lang)
        # As premailer does: keep the doctype only when the template had one.
        root = tree if stripped.startswith(tree.docinfo.doctype) else page
        out: bytes = etree.tostring(root, method="html", pretty_print=True, encoding="utf-8")
    except RenderError:
        raise
    except Exception as exc:  # premailer raises assorted lxml/cssutils errors
        raise RenderError(f"CSS inlining failed: {exc}") from exc
    return out.decode("utf-8")


def _hold_links(page: Any, comment: Any) -> list[tuple[Any, Any]]:
    """Every `<link>` swapped for an inert comment, to be swapped back after inlining."""
    held = []
    for link in list(page.iter("link")):
        placeholder = comment(" link ")
        _swap(link, placeholder)
        held.append((placeholder, link))
    return held


def _swap(old: Any, new: Any) -> None:
    """`new` where `old` was in the tree; the text after `old` stays where it was."""
    parent = old.getparent()
    if parent is None:
        return
    new.tail, old.tail = old.tail, None
    parent.replace(old, new)
