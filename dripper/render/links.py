"""Click tracking, the open pixel and the auto-footer, placed once and filled per email.

At compile time every `<a href>` / `<area href>` of the compiled HTML is found once:

- a fixed http(s) URL becomes a marker `M L3 M` (link number 3, its URL already checked
  and base64url-encoded for its click token);
- an href holding Jinja becomes `M D M {{ ... }} M E M`, because its URL is only known
  after rendering;
- other hrefs (mailto:, tel:, #anchor) are left alone.

One more marker `M P M` sits just before `</body>`: the open pixel and, when the
rendered email lacks them, the unsubscribe link and postal address go there.
`M` is a private-use character plus a random nonce, so customer data cannot forge one.
Per email, `fill` is one `str.split` and a join: no HTML parsing.
"""

from __future__ import annotations

import html as htmllib
import re
import secrets
import string
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from dripper.tokens import TokenError, check_url, encode_url

_ANCHOR = re.compile(r"""<(?:a|area)\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_HREF = re.compile(r"""(\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class LinkPlan:
    marker: str
    urls: tuple[str, ...]  # fixed link targets, unescaped
    originals: tuple[str, ...]  # the same as written in the HTML (escaped)
    encoded: tuple[str, ...]  # the same as carried in a click token

    def fill(
        self,
        html: str,
        *,
        static: Callable[[int], str] | None,
        dynamic: Callable[[str], str | None] | None,
        tail: str,
    ) -> str:
        """The email's HTML: static link `i` becomes `static(i)` (the original when None),
        a rendered dynamic href `u` becomes `dynamic(unescaped u)` unless that returns
        None, and the tail goes before `</body>`."""
        parts = html.split(self.marker)
        out = [parts[0]]
        i = 1
        count = len(parts)
        while i < count:
            code = parts[i]
            if code == "P":
                out.append(tail)
            elif code == "D":
                value = parts[i + 1]
                if i + 2 >= count or parts[i + 2] != "E":
                    raise ValueError("unbalanced link markers")
                target = None
                if dynamic is not None and value:
                    target = dynamic(htmllib.unescape(value) if "&" in value else value)
                out.append(value if target is None else target)
                i += 2
            else:
                index = int(code[1:])
                out.append(self.originals[index] if static is None else static(index))
            out.append(parts[i + 1])
            i += 2
        return "".join(out)


_rendering_with: ContextVar[str | None] = ContextVar("dripper_link_marker", default=None)


def marking_links(marker: str) -> Token[str | None]:
    """While an HTML body renders: HTML-safe values get their links marked too."""
    return _rendering_with.set(marker)


def done_marking(token: Token[str | None]) -> None:
    _rendering_with.reset(token)


def mark_markup_links(value: Any) -> Any:
    """`finalize` of the HTML sandbox: links inside an HTML-safe value such as
    `{{ edition.html|safe }}` are not in the compiled template, so they are marked here,
    as the value is output, and tracked like any link computed by Jinja."""
    if isinstance(value, Markup) and "href" in value:
        marker = _rendering_with.get()
        if marker is not None:
            return Markup(_ANCHOR.sub(lambda m: _wrap_hrefs(m.group(), marker), value))  # noqa: S704
    return value


def _wrap_hrefs(anchor: str, marker: str) -> str:
    def wrap(m: re.Match[str]) -> str:
        value = next(g for g in (m.group(2), m.group(3), m.group(4)) if g is not None)
        return f'{m.group(1)}"{marker}D{marker}{value}{marker}E{marker}"'

    return _HREF.sub(wrap, anchor, count=1)


def mark_links(html: str, is_dynamic: Callable[[str], bool]) -> tuple[str, LinkPlan]:
    """Markers in place of every trackable href, plus the tail marker."""
    marker = "\ue000" + "".join(secrets.choice(string.ascii_letters) for _ in range(8))
    urls: list[str] = []
    originals: list[str] = []
    encoded: list[str] = []
    index_of: dict[str, int] = {}

    def href(m: re.Match[str]) -> str:
        quote = '"' if m.group(2) is not None else "'" if m.group(3) is not None else ""
        value = next(g for g in (m.group(2), m.group(3), m.group(4)) if g is not None)
        if is_dynamic(value):
            wrapped = f"{marker}D{marker}{value}{marker}E{marker}"
            return f"{m.group(1)}{quote or chr(34)}{wrapped}{quote or chr(34)}"
        url = htmllib.unescape(value).strip()
        try:
            check_url(url)
        except TokenError:
            return m.group()
        if url not in index_of:
            index_of[url] = len(urls)
            urls.append(url)
            originals.append(value)
            encoded.append(encode_url(url))
        return f"{m.group(1)}{quote or chr(34)}{marker}L{index_of[url]}{marker}{quote or chr(34)}"

    def anchor(m: re.Match[str]) -> str:
        return _HREF.sub(href, m.group(), count=1)

    marked = _ANCHOR.sub(anchor, html)
    tail = f"{marker}P{marker}"
    ends = list(_BODY_END.finditer(marked))
    if ends:
        cut = ends[-1].start()
        marked = marked[:cut] + tail + marked[cut:]
    else:
        marked += tail
    return marked, LinkPlan(marker, tuple(urls), tuple(originals), tuple(encoded))


def pixel(url: str) -> str:
    return (
        f'<img src="{htmllib.escape(url)}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0;" />'
    )


def html_footer(
    unsubscribe_url: str,
    postal_address: str,
    *,
    link: bool,
    address: bool,
    label: str = "Unsubscribe",
) -> str:
    """The small footer added when a template shows no unsubscribe link or no address
    (`label`: "Unsubscribe" in the customer's language)."""
    pieces = []
    if address:
        pieces.append(htmllib.escape(postal_address))
    if link:
        pieces.append(
            f'<a href="{htmllib.escape(unsubscribe_url)}" '
            'style="color:#595959;text-decoration:underline;">'
            f"{htmllib.escape(label)}</a>"
        )
    return (
        '<div style="margin:0 auto;max-width:600px;padding:16px 8px;text-align:center;'
        "font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:20px;"
        'color:#595959;">' + "<br />".join(pieces) + "</div>"
    )


def text_footer(
    unsubscribe_url: str,
    postal_address: str,
    *,
    link: bool,
    address: bool,
    label: str = "Unsubscribe",
) -> str:
    lines = ["", "--"]
    if address:
        lines.append(postal_address)
    if link:
        lines.append(f"{label}: {unsubscribe_url}")
    return "\n".join(lines) + "\n"
