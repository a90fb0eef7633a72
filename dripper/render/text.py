"""The plain-text part, derived from the HTML when no `.txt` template is given.

Links stay readable ("Shop now (https://acme.test/shop)"), headings and paragraphs are
separated by blank lines, list items get "- " or "1. ", hidden things (head, styles,
MJML's preview text, Outlook-only comments) are dropped. Written on the stdlib
`html.parser`: the usual converter, html2text, is GPL.

At compile time the HTML still holds placeholders for Jinja tags (see protect.py):
expressions pass through as text, and statements are kept, in order, even when they sit
in something the text leaves out, so the derived text is itself a Jinja template.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from dripper.render.protect import Protected

# MJML puts each component (mj-text, mj-button...) in a table row: rows read as paragraphs.
_BLOCK_2 = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "tr", "ul", "ol", "pre"}
_BLOCK_1 = {
    "div", "td", "th", "section", "article", "header", "footer", "center", "li",
    "dl", "dt", "dd", "tbody", "thead", "tfoot", "caption", "figure", "figcaption", "address",
    "main", "nav", "aside", "form",
}  # fmt: skip
_SKIP = {"head", "style", "script", "title", "template", "noscript"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "source", "col", "area", "base", "wbr"}
_HIDDEN = re.compile(r"display\s*:\s*none|mso-hide\s*:\s*all", re.IGNORECASE)
_SPACE = re.compile(r"[ \t\r\n\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")


def html_to_text(html: str, protected: Protected | None = None) -> str:
    """Readable text for `html`. With `protected`, statement placeholders found anywhere
    (comments, attributes, skipped elements) are kept in the output."""
    if protected is not None:
        # A statement between elements travels as a comment; MJML may put it inside an
        # Outlook conditional comment, and a comment in a comment ends the outer one
        # early: the parser then read the rest of the email as broken markup and the text
        # part lost its body. Bare, each token is comment data there and text elsewhere.
        nonce = protected.nonce
        html = protected.pattern.sub(lambda m: f"{nonce}{m.group(2)}", html)
    maker = _TextMaker(protected)
    maker.feed(html)
    maker.close()
    return maker.result()


def tidy(text: str) -> str:
    """Per-email clean-up after rendering: `{% if %}`s and loops leave blank runs and
    doubled spaces behind. Plain `str.replace` where it can: this runs for every email."""
    while "  " in text:
        text = text.replace("  ", " ")
    if " \n" in text:
        text = text.replace(" \n", "\n")
    if "\n " in text:
        text = text.replace("\n ", "\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return wrap(text.strip()) + "\n"


WIDTH = 76  # a text part's lines: what every mail client shows without scrolling (RFC 3676)


def wrap(text: str) -> str:
    """Lines longer than WIDTH broken between words (a URL or any long word is never
    broken, only put on a line of its own); a list item's continuation indented under its
    text. Cheap when nothing is long: one pass over the lines."""
    lines = text.split("\n")
    if all(len(line) <= WIDTH for line in lines):
        return text
    out: list[str] = []
    for line in lines:
        if len(line) <= WIDTH:
            out.append(line)
            continue
        head = line[: len(line) - len(line.lstrip())]
        marker = line.lstrip().split(" ", 1)[0]
        hanging = (
            " " * (len(head) + len(marker) + 1)
            if marker in ("-", "*") or (marker[:-1].isdigit() and marker.endswith("."))
            else head
        )
        current = ""
        for word in line.split(" "):
            if not word:
                continue
            if not current:
                current = head + word
            elif len(current) + 1 + len(word) <= WIDTH:
                current += " " + word
            else:
                out.append(current)
                current = hanging + word
        out.append(current)
    return "\n".join(out)


class _TextMaker(HTMLParser):
    def __init__(self, protected: Protected | None) -> None:
        super().__init__(convert_charrefs=True)
        self.protected = protected
        self.tokens = protected.pattern if protected else None
        self.out: list[str] = []
        self.pending = 0  # newlines owed before the next visible text
        self.at_line_start = True
        self.skip_depth = 0
        self.hidden: list[str] = []  # tag names of open hidden elements
        self.pre = 0
        self.lists: list[list[int]] = []  # per open list: [next number] or [] for bullets
        self.links: list[tuple[str, int, list[str]]] = []  # href, start in out, img alts

    # output helpers ------------------------------------------------------------------------
    def write(self, text: str) -> None:
        if not text:
            return
        if self.pending:
            if self.out:
                self.out.append("\n" * self.pending)
            self.pending = 0
            self.at_line_start = True
        if self.at_line_start and not self.pre:
            text = text.lstrip(" ")
            if not text:
                return
        self.out.append(text)
        self.at_line_start = text.endswith("\n")

    def block(self, newlines: int) -> None:
        if self.out:
            self.pending = max(self.pending, newlines)

    def keep_statements(self, text: str | None) -> None:
        """Statements inside something not shown still open and close Jinja blocks."""
        if text and self.tokens is not None and self.protected is not None:
            for m in self.tokens.finditer(text):
                if self.protected.placeholders[int(m.group(2))].statement:
                    # Breaks owed so far go before the statement, not into a loop body:
                    # `<p>{% for %}` must not repeat the paragraph break per item.
                    if self.pending and self.out:
                        self.out.append("\n" * self.pending)
                        self.pending = 0
                        self.at_line_start = True
                    self.out.append(f"{self.protected.nonce}{m.group(2)}")

    @property
    def invisible(self) -> bool:
        return bool(self.skip_depth or self.hidden)

    # parser callbacks ----------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        shown_href = tag == "a" and not self.invisible
        for name, value in attrs:
            if not (shown_href and name == "href"):
                self.keep_statements(value)
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag not in _VOID and _HIDDEN.search(values.get("style") or ""):
            self.hidden.append(tag)
            return
        if self.invisible:
            return
        if tag in _BLOCK_2:
            self.block(2)
        elif tag in _BLOCK_1:
            self.block(1)
        if tag in ("ul", "ol"):
            self.lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            counter = self.lists[-1] if self.lists else []
            if counter:
                self.write(f"{counter[0]}. ")
                counter[0] += 1
            else:
                self.write("- ")
        elif tag == "br":
            self.out.append("\n")
            self.at_line_start = True
        elif tag == "hr":
            self.block(2)
            self.write("-" * 20)
            self.block(2)
        elif tag == "pre":
            self.pre += 1
        elif tag == "a":
            self.links.append((values.get("href") or "", len(self.out), []))
        elif tag == "img" and self.links and values.get("alt"):
            self.links[-1][2].append(values["alt"] or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(self.skip_depth - 1, 0)
            return
        if self.hidden:
            if tag == self.hidden[-1]:
                self.hidden.pop()
            return
        if self.skip_depth:
            return
        if tag == "a" and self.links:
            self._end_link()
        elif tag in ("ul", "ol") and self.lists:
            self.lists.pop()
        elif tag == "pre":
            self.pre = max(self.pre - 1, 0)
        if tag in _BLOCK_2:
            self.block(2)
        elif tag in _BLOCK_1:
            self.block(1)

    def _end_link(self) -> None:
        href, start, alts = self.links.pop()
        label = "".join(self.out[start:]).strip()
        target = href.strip()
        lowered = target.lower()
        if not target or lowered.startswith(("#", "javascript:", "data:")):
            return
        if lowered.startswith("mailto:"):
            target = target[7:].split("?", 1)[0]
        if not label and alts:
            self.write(" ".join(alts))
            label = " ".join(alts)
        if label == target or label.rstrip("/") == target.rstrip("/"):
            return
        self.write(f" ({target})" if label else target)

    def handle_data(self, data: str) -> None:
        if self.invisible:
            self.keep_statements(data)
            return
        if self.pre:
            self.write(data)
            return
        text = _SPACE.sub(" ", data)
        if text == " " and (self.at_line_start or self.pending):
            return
        self.write(text)

    def handle_comment(self, data: str) -> None:
        self.keep_statements(data)

    def result(self) -> str:
        text = "".join(self.out)
        text = _TRAILING.sub("\n", text)
        lines = [line.strip(" ") for line in text.split("\n")]
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"
