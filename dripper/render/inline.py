"""CSS inlining for `.html` templates with premailer, with the network taken away.

premailer with `allow_network=False` still lets cssutils fetch every `@import url(...)` it
parses (cssutils' default fetcher is urllib), and would fetch `<link rel=stylesheet>` if
the flag were ever flipped. So, before premailer sees the HTML:

- each `<style>` block is parsed by cssutils with a fetcher that refuses everything, and
  any `@import` rule it finds is dropped (cssutils decides what is an import, so CSS
  escapes cannot sneak one past a regex);
- premailer runs with `allow_network=False`, no external files, and a requests session
  that raises on any request, so `<link>` stylesheets are left alone, never fetched.

Inlining happens once per template version (premailer costs ~16 ms a call).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from dripper.render.errors import RenderError

_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)


class NetworkRefused(RenderError):
    """Something in the inliner tried to reach the network."""


def _refuse_fetch(url: str) -> None:
    # cssutils treats None as "could not fetch" and carries on without the import.
    return None


def drop_imports(css: str) -> str:
    """`css` without its `@import` rules (unchanged when it has none)."""
    if "@" not in css and "\\" not in css:
        return css
    import cssutils

    cssutils.log.setLevel(logging.CRITICAL)  # it reports every placeholder as bad CSS
    parser = cssutils.CSSParser(fetcher=_refuse_fetch, validate=False, raiseExceptions=False)
    sheet = parser.parseString(css)
    imports = [rule for rule in sheet.cssRules if rule.type == rule.IMPORT_RULE]
    if not imports:
        return css
    for rule in imports:
        sheet.deleteRule(rule)
    serialized: bytes = sheet.cssText
    return serialized.decode("utf-8")


def neutralise(html: str) -> str:
    """The HTML with every `<style>` block stripped of `@import`."""
    return _STYLE.sub(lambda m: m.group(1) + drop_imports(m.group(2)) + m.group(3), html)


class _NoNetworkSession:
    """Stands in for premailer's requests session: any request is a bug, loudly."""

    def get(self, url: str, *args: Any, **kwargs: Any) -> Any:
        raise NetworkRefused(f"refused to fetch {url!r} while inlining CSS")

    def __getattr__(self, name: str) -> Any:
        raise NetworkRefused("the CSS inliner has no network")


def inline_css(html: str) -> str:
    """Styles from `<style>` blocks moved into `style=""` attributes, network-free.
    Media queries and other rules that cannot be inlined stay in a `<style>` block."""
    from premailer import Premailer

    logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
    premailer = Premailer(
        html=neutralise(html),
        allow_network=False,
        allow_loading_external_files=False,
        session=_NoNetworkSession(),
        disable_validation=True,  # validation drops values it does not know (placeholders)
        disable_link_rewrites=True,
        strip_important=False,
        remove_classes=False,
        cssutils_logging_level=logging.CRITICAL,
    )
    try:
        result: str = premailer.transform()
    except RenderError:
        raise
    except Exception as exc:  # premailer raises assorted lxml/cssutils errors
        raise RenderError(f"CSS inlining failed: {exc}") from exc
    return result
