"""The linter of `dripper check` (DESIGN 15): what mail-tester, Litmus and Parcel would say
of a rendered email, as pure functions over its HTML (read by an HTML parser, with the
inlined styles of each element) and its text part. Each rule returns findings; `lint` runs
them all. No regular expression reads the HTML.

Rules: `size` (over 90 KB: Gmail clips at about 102 KB), `img-alt`, `link-text` (a URL,
"click here", "here"), `link-domain` (the text names another domain than the link goes to),
`unsafe-link` (javascript:, data:), `small-text` (under 14 px), `contrast` (under 4.5:1,
hidden preheader text included), `lang`, `heading`, `title` (not the subject),
`layout-table` (a `.html` template's table without role="presentation"), `long-word`
(over 40 characters without a break), `text-line` (a text line over 200 characters),
`text-repeat` (the same URL twice in a row in the text), `text-empty` and `text-markup`
(errors: the text part lost its body, or holds tags).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

MAX_HTML = 90 * 1024
MIN_FONT_PX = 14.0
MIN_CONTRAST = 4.5
MAX_WORD = 40
MAX_TEXT_LINE = 200
VAGUE = {"click here", "here", "click", "this link", "link", "read more here"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
SKIPPED = {"style", "script", "head", "title"}


@dataclass(frozen=True)
class Finding:
    """One thing a rule found: its name, what to do, and something to find it by in the
    template (an attribute's value or the text), when there is one."""

    rule: str
    message: str
    anchor: str = ""
    error: bool = False  # an error, not a warning (the text part lost its body)


@dataclass
class _Node:
    """An element: its own text, all the text inside it, and the styles it ends up with
    (computed once, from its parent's, as a browser cascades inline styles)."""

    tag: str
    attrs: dict[str, str]
    style: dict[str, str]
    text: list[str] = field(default_factory=list)
    parent: _Node | None = None
    inner: list[str] = field(default_factory=list)  # its text and its descendants'
    colour: tuple[int, int, int] = (0, 0, 0)
    background: tuple[int, int, int] = (255, 255, 255)
    font_px: float | None = None
    hidden: bool = False
    skipped: bool = False

    def __post_init__(self) -> None:
        parent = self.parent
        if parent is not None:
            self.colour, self.background = parent.colour, parent.background
            self.font_px, self.hidden = parent.font_px, parent.hidden
            self.skipped = parent.skipped
        self.skipped = self.skipped or self.tag in SKIPPED
        self.hidden = self.hidden or self.style.get("display") == "none"
        colour = parse_colour(self.style.get("color", ""))
        if colour is not None:
            self.colour = colour
        for value in (
            self.style.get("background-color", ""),
            self.style.get("background", ""),
            self.attrs.get("bgcolor", ""),
        ):
            found = parse_colour(value) if value else None
            if found is not None:
                self.background = found
                break
        size = self.style.get("font-size", "")
        if size.endswith("px"):
            try:
                self.font_px = float(size[:-2])
            except ValueError:
                self.font_px = None
        elif size:
            self.font_px = None  # em, %, keywords: not judged


class _Reader(HTMLParser):
    """The elements with their parents and inline styles, and the text each holds."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[_Node] = []
        self.stack: list[_Node] = []
        self.title = ""
        self.html_lang: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "html":
            self.html_lang = values.get("lang")
        if tag == "title":
            self._in_title = True
        node = _Node(tag, values, _style(values.get("style", "")), parent=self._top())
        self.nodes.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        self.nodes.append(_Node(tag, values, _style(values.get("style", "")), parent=self._top()))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        top = self._top()
        if top is not None and data.strip():
            top.text.append(data)
            for node in self.stack:
                if node.tag == "a":  # only links need the text inside them
                    node.inner.append(data)

    def _top(self) -> _Node | None:
        return self.stack[-1] if self.stack else None


def _style(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for declaration in text.split(";"):
        name, sep, value = declaration.partition(":")
        if sep:
            found[name.strip().lower()] = value.strip().lower().replace("!important", "").strip()
    return found


# --- colours -----------------------------------------------------------------------------------

_NAMED = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "silver": (192, 192, 192),
    "transparent": None,
}


def parse_colour(value: str) -> tuple[int, int, int] | None:
    """`#abc`, `#aabbcc`, `rgb(1, 2, 3)`, a few names; None for anything else."""
    text = value.strip().lower().split()[0] if value.strip() else ""
    if text in _NAMED:
        return _NAMED[text]
    if text.startswith("#") and len(text) in (4, 7):
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        try:
            return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
        except ValueError:
            return None
    if text.startswith("rgb(") and value.strip().endswith(")"):
        parts = value.strip()[4:-1].split(",")
        try:
            r, g, b = (int(float(p)) for p in parts[:3])
        except ValueError:
            return None
        return (r, g, b)
    return None


def contrast(one: tuple[int, int, int], other: tuple[int, int, int]) -> float:
    """The WCAG 2 contrast ratio of two colours (1 to 21)."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        def channel(c: int) -> float:
            s = c / 255
            return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

        r, g, b = (channel(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# --- the rules -------------------------------------------------------------------------------


def lint(
    html: str,
    text: str,
    *,
    subject: str,
    kind: str = "mjml",
    target: Callable[[str], str] = lambda href: href,
) -> list[Finding]:
    """Every finding of every rule, for one rendered email (`kind`: the template's, mjml
    or html; `target`: where a link really goes, for a tracked link's redirect)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    found: list[Finding] = []
    found += rule_size(html)
    found += rule_images(reader)
    found += rule_links(reader, target)
    found += rule_text_style(reader)
    found += rule_document(reader, subject)
    if kind == "html":
        found += rule_layout_tables(reader)
    found += rule_long_words(reader)
    found += rule_text_part(text)
    if not any(f.error for f in found):
        found += rule_text_lost(reader, text)  # a warning: a short .txt may be meant
    return found


def rule_text_lost(reader: _Reader, text: str) -> list[Finding]:
    """The text part holds far fewer words than the HTML shows: it lost its body (a
    statement that broke the derivation, a .txt left behind)."""
    shown = sum(
        len(" ".join(n.text).split()) for n in reader.nodes if not n.hidden and not n.skipped
    )
    written = len(text.split())
    if shown < 40 or written >= shown * 0.5:
        return []
    return [
        Finding(
            "text-lost",
            f"the text part has {written} words, the HTML shows {shown}: it lost most of its "
            "body? Write a .txt beside the template, or see which {% %} statement moved",
        )
    ]


def rule_size(html: str) -> list[Finding]:
    size = len(html.encode("utf-8"))
    if size <= MAX_HTML:
        return []
    return [
        Finding(
            "size",
            f"the HTML is {size / 1024:.0f} KB: Gmail clips emails over about 102 KB and hides "
            "the rest (the unsubscribe link with it); keep it under 90 KB (link big images, "
            "shorten the template)",
        )
    ]


def rule_images(reader: _Reader) -> list[Finding]:
    return [
        Finding(
            "img-alt",
            f"an image without alt text ({n.attrs.get('src', '')[:60]}): screen readers and "
            'mail clients that block images show nothing; add alt="what it shows" (alt="" '
            "if it is decoration)",
            anchor=n.attrs.get("src", ""),
        )
        for n in reader.nodes
        if n.tag == "img" and "alt" not in n.attrs and not n.hidden
    ]


def _link_text(link: _Node) -> str:
    return " ".join(" ".join(link.inner).split())


def _host(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.lower().removeprefix("www.")


def _named_host(text: str) -> str:
    """The domain a link's whole visible text names (`acme.test`, `www.acme.test/x`,
    `https://acme.test`), or "": words around a dotted one ("Node.js tips", "e.g. our
    guide") name no domain, nor does "19.99" or "U.S."."""
    words = text.strip().split()
    if len(words) != 1:
        return ""
    word = words[0]
    if "://" not in word:
        name = word.split("/", 1)[0]
        labels = name.split(".")
        if (
            len(labels) < 2
            or "@" in name
            or not all(label and label.replace("-", "").isalnum() for label in labels)
            or not (labels[-1].isalpha() and len(labels[-1]) >= 2)
        ):
            return ""
        word = "https://" + word
    return _host(word)


def rule_links(reader: _Reader, target: Callable[[str], str] = lambda href: href) -> list[Finding]:
    found: list[Finding] = []
    for link in reader.nodes:
        if link.tag != "a" or link.hidden:
            continue
        href = target(link.attrs.get("href", "").strip())
        scheme = href.split(":", 1)[0].lower() if ":" in href else ""
        if scheme in ("javascript", "data", "vbscript"):
            found.append(
                Finding(
                    "unsafe-link",
                    f"a {scheme}: link: mail clients strip or block it and spam filters score "
                    "it; link to a web page instead",
                    anchor=href[:40],
                )
            )
            continue
        text = _link_text(link)
        lowered = text.lower().strip(" .!:")
        if lowered in VAGUE:
            found.append(
                Finding(
                    "link-text",
                    f'link text "{text}": it says nothing out of context (screen readers list '
                    'links by their text); name where it goes, like "Read the brewing guide"',
                    anchor=href,
                )
            )
        elif lowered.startswith(("http://", "https://", "www.")):
            found.append(
                Finding(
                    "link-text",
                    f"link text is a URL ({text[:60]}): hard to read and to trust; name where "
                    "it goes and link the words",
                    anchor=href,
                )
            )
        named = _named_host(text)
        goes = _host(href)
        if named and goes and named != goes and not goes.endswith("." + named):
            found.append(
                Finding(
                    "link-domain",
                    f"the link text names {named} but the link goes to {goes}: phishing "
                    "filters flag exactly this; make the text match, or say it in words",
                    anchor=href,
                )
            )
    return found


def rule_text_style(reader: _Reader) -> list[Finding]:
    """Small text and low contrast, per element that holds text."""
    found: list[Finding] = []
    small: set[str] = set()
    faint: set[str] = set()
    for node in reader.nodes:
        if not node.text or node.skipped:
            continue
        sample = " ".join(" ".join(node.text).split())[:40]
        hidden = node.hidden
        size = node.font_px
        if not hidden and size is not None and size < MIN_FONT_PX and sample not in small:
            small.add(sample)
            found.append(
                Finding(
                    "small-text",
                    f'text at {size:g} px ("{sample}"): under 14 px is hard to read on a '
                    "phone; use 14 px or more",
                    anchor=sample,
                )
            )
        ratio = contrast(node.colour, node.background)
        if ratio < MIN_CONTRAST and sample not in faint:
            faint.add(sample)
            where = " (hidden preheader text: spam filters read it too)" if hidden else ""
            found.append(
                Finding(
                    "contrast",
                    f'text and background at {ratio:.2f}:1 ("{sample}"){where}: under 4.5:1 '
                    "fails WCAG AA and spam filters score low-contrast text; darken the text "
                    "or lighten the background",
                    anchor=sample,
                )
            )
    return found


def rule_document(reader: _Reader, subject: str) -> list[Finding]:
    found: list[Finding] = []
    if not reader.html_lang or reader.html_lang == "und":
        found.append(
            Finding(
                "lang",
                "the <html> has no language: screen readers guess the voice; set the "
                "campaign's language: (or [company] language)",
            )
        )
    if not any(n.tag in ("h1", "h2", "h3", "h4", "h5", "h6") for n in reader.nodes):
        found.append(
            Finding(
                "heading",
                "no heading: screen reader users jump between headings to read an email; "
                "make its title an <h1>",
            )
        )
    title = " ".join(reader.title.split())
    if title != " ".join(subject.split()):
        found.append(
            Finding(
                "title",
                f'the <title> is "{title[:60]}", not the subject "{subject[:60]}": some '
                "clients show the title; use {{ subject }} (the layout's title block)",
            )
        )
    return found


def rule_layout_tables(reader: _Reader) -> list[Finding]:
    tables = [n for n in reader.nodes if n.tag == "table" and n.attrs.get("role") != "presentation"]
    if not tables:
        return []
    return [
        Finding(
            "layout-table",
            f'{len(tables)} table(s) without role="presentation": screen readers announce '
            "layout tables as data (rows, columns); add the role",
        )
    ]


def rule_long_words(reader: _Reader) -> list[Finding]:
    found: list[Finding] = []
    seen: set[str] = set()
    for node in reader.nodes:
        if not node.text or node.skipped or node.hidden:
            continue
        for word in " ".join(node.text).split():
            if len(word) > MAX_WORD and word not in seen:
                seen.add(word)
                found.append(
                    Finding(
                        "long-word",
                        f"{len(word)} characters without a break ({word[:40]}...): clients "
                        "that ignore word-break cut it off at the right; link words instead",
                        anchor=word[:30],
                    )
                )
    return found


def rule_text_part(text: str) -> list[Finding]:
    found: list[Finding] = []
    lines = text.strip().splitlines()
    # The footer dripper adds (after a "--" line) is no body: without it, is anything left?
    cut = max((i for i, line in enumerate(lines) if line.strip() == "--"), default=len(lines))
    body = "\n".join(lines[:cut]).strip()
    if not body:
        return [
            Finding(
                "text-empty",
                "the text part is empty: clients that show plain text show nothing (a "
                "{% set %} or {% block %} in the wrong place?)",
                error=True,
            )
        ]
    reader = _Reader()
    reader.feed(text)
    reader.close()
    tags = [
        n.tag
        for n in reader.nodes
        if n.tag in ("p", "div", "table", "td", "span", "br", "a", "img")
    ]
    if tags:
        found.append(
            Finding(
                "text-markup",
                f"the text part holds HTML (<{tags[0]}>): it is shown as it is; write plain "
                "text in the .txt template",
                error=True,
            )
        )
    lines = text.splitlines()
    for line in lines:
        if len(line) > MAX_TEXT_LINE:
            found.append(
                Finding(
                    "text-line",
                    f"a text line of {len(line)} characters: hard to read and wrapped badly; "
                    "break it (200 at most)",
                    anchor=line[:30],
                )
            )
            break
    previous: list[str] = []  # the URLs of the last line that had text
    for line in lines:
        if not line.strip():
            continue
        urls = [
            w.strip("()<>.,")
            for w in line.split()
            if w.strip("(<").startswith(("http://", "https://"))
        ]
        twice = [u for u in urls if u in previous] or [u for u in urls if urls.count(u) > 1]
        if twice:
            found.append(
                Finding(
                    "text-repeat",
                    f"the text part shows {twice[0][:60]} twice in a row: once is enough",
                    anchor=twice[0],
                )
            )
            break
        previous = urls
    return found
