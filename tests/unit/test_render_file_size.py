"""Template files are capped at 1 MiB, checked before they are read (issue 9, item 10): a
48 MB template once took `dripper check` 53 s and 2.2 GB."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dripper.render.errors import RenderError
from dripper.render.source import MAX_FILE_BYTES
from tests.unit.test_render_support import make_renderer, render

FOOT = "<p>{{ company.postal_address }} <a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>"


def _padded(head: str, tail: str, size: int) -> str:
    """`head`, a Jinja comment, `tail`: exactly `size` bytes of a working template."""
    padding = size - len((head + tail).encode("utf-8")) - len("{#  #}")
    return f"{head}{{# {'x' * padding} #}}{tail}"


def test_an_entry_template_over_1_mib_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .html template one byte over 1 MiB is refused with one line naming the file, its
    size and what to do."""
    page = _padded("<html><body><p>Hi</p>", f"{FOOT}</body></html>", MAX_FILE_BYTES + 1)
    renderer = make_renderer(tmp_path, monkeypatch, {"big.html": page})
    with pytest.raises(RenderError) as caught:
        render(renderer, "big.html")
    assert str(caught.value) == (
        "templates/big.html: template 'big.html' is larger than 1 MiB (1,048,577 bytes): "
        "refused; link large images and files instead of embedding them"
    )


def test_a_template_of_exactly_1_mib_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap is 1 MiB inclusive: a template of exactly that size renders."""
    page = _padded("<html><body><p>Hi</p>", f"{FOOT}</body></html>", MAX_FILE_BYTES)
    renderer = make_renderer(tmp_path, monkeypatch, {"edge.html": page})
    assert "Hi" in render(renderer, "edge.html").html


def test_a_huge_sparse_template_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 48 MiB file (sparse: it costs no disk) is refused by its size alone."""
    renderer = make_renderer(tmp_path, monkeypatch)
    with open(tmp_path / "templates" / "huge.mjml", "wb") as handle:
        handle.truncate(48 << 20)
    with pytest.raises(RenderError) as caught:
        render(renderer, "huge.mjml")
    assert "template 'huge.mjml' is larger than 1 MiB (50,331,648 bytes)" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "source", "big", "line"),
    [
        ("uses-big-partial.mjml", '{% include "partials/big.mjml" %}', "partials/big.mjml", 3),
        ("uses-big-layout.mjml", '{% extends "big-layout.mjml" %}', "big-layout.mjml", 3),
        ("uses-big-css.mjml", '<mj-include path="big.css" type="css" />', "big.css", 3),
    ],
)
def test_a_pulled_in_file_over_1_mib_is_refused_where_it_is_pulled_in(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    source: str,
    big: str,
    line: int,
) -> None:
    """Partials, layouts and mj-included files are capped too; the error points at the
    line that pulls the big file in and names it."""
    text = f"<mjml>\n<mj-body>\n{source}\n</mj-body>\n</mjml>\n"
    templates = {name: text, big: "x" * (MAX_FILE_BYTES + 1)}
    renderer = make_renderer(tmp_path, monkeypatch, templates)
    with pytest.raises(RenderError) as caught:
        render(renderer, name)
    assert str(caught.value).startswith(
        f"templates/{name}:{line}: template {big!r} is larger than 1 MiB (1,048,577 bytes)"
    )


def test_a_text_companion_over_1_mib_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The .txt beside a template is capped like the template itself."""
    templates = {
        "small.html": f"<html><body>{FOOT}</body></html>",
        "small.txt": "y" * (MAX_FILE_BYTES + 10),
    }
    renderer = make_renderer(tmp_path, monkeypatch, templates)
    with pytest.raises(RenderError) as caught:
        render(renderer, "small.html")
    assert "template 'small.txt' is larger than 1 MiB (1,048,586 bytes)" in str(caught.value)


def test_a_fifo_is_refused_instead_of_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A named pipe where a template should be is refused at once, never read (a read
    would wait for a writer forever)."""
    renderer = make_renderer(tmp_path, monkeypatch)
    os.mkfifo(tmp_path / "templates" / "pipe.html")
    with pytest.raises(RenderError) as caught:
        render(renderer, "pipe.html")
    assert str(caught.value) == "templates/pipe.html: template 'pipe.html' is not a regular file"
