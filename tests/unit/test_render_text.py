"""The text part derived from HTML: readable links, paragraphs, lists, nothing hidden."""

from __future__ import annotations

from dripper.render.protect import protect
from dripper.render.text import html_to_text, tidy


def test_links_stay_readable() -> None:
    """A link reads "label (url)"; a bare URL, mailto and anchors are not doubled."""
    html = (
        '<p><a href="https://acme.test/shop">Shop now</a>, '
        '<a href="https://acme.test/">https://acme.test/</a>, '
        '<a href="mailto:help@acme.test?subject=hi">write to us</a>, '
        '<a href="#top">top</a>.</p>'
    )
    assert html_to_text(html) == (
        "Shop now (https://acme.test/shop), https://acme.test/, "
        "write to us (help@acme.test), top.\n"
    )


def test_image_links_use_their_alt_text() -> None:
    """A linked image with no text shows its alt text and the URL."""
    html = '<a href="https://acme.test/"><img src="logo.png" alt="Acme Coffee"></a>'
    assert html_to_text(html) == "Acme Coffee (https://acme.test/)\n"


def test_headings_paragraphs_and_lists() -> None:
    """Blocks are separated by blank lines, list items get bullets or numbers."""
    html = (
        "<h1>Spring</h1><p>New coffees\n   are   here.</p>"
        "<ul><li>Kenya</li><li>Colombia</li></ul><ol><li>Grind</li><li>Brew</li></ol>"
        "<p>Line one<br>Line two</p>"
    )
    assert html_to_text(html) == (
        "Spring\n\nNew coffees are here.\n\n- Kenya\n- Colombia\n\n1. Grind\n2. Brew\n\n"
        "Line one\nLine two\n"
    )


def test_hidden_things_are_left_out() -> None:
    """Head, styles, scripts, MJML's hidden preview text and Outlook comments are dropped."""
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        '<div style="display:none;max-height:0">Preview text</div>'
        "<!--[if mso]><p>Outlook only</p><![endif]--><script>alert(1)</script>"
        "<p>Visible &amp; kept</p></body></html>"
    )
    assert html_to_text(html) == "Visible & kept\n"


def test_statements_survive_where_the_text_drops_content() -> None:
    """Jinja statements inside hidden parts and attributes are kept, in order."""
    source = (
        '<div style="display:none">{% if a %}x{% endif %}</div>'
        '<p title="{% if b %}t{% endif %}">{% for i in items %}{{ i }}{% endfor %}</p>'
    )
    protected = protect(source)
    derived = protected.restore(html_to_text(protected.text, protected))
    assert derived == (
        "{% if a %}{% endif %}{% if b %}{% endif %}\n\n{% for i in items %}{{ i }}{% endfor %}\n"
    )


def test_a_loop_inside_a_paragraph_stays_inline() -> None:
    """The paragraph break of `<p>{% for %}` is written once, before the loop."""
    source = "<p>A</p><p>{% for i in items %}{{ i }} {% endfor %}</p><p>B</p>"
    protected = protect(source)
    derived = protected.restore(html_to_text(protected.text, protected))
    assert derived == "A\n\n{% for i in items %}{{ i }} {% endfor %}\n\nB\n"


def test_tidy_collapses_blank_runs_and_double_spaces() -> None:
    """Per-email clean-up: at most one blank line, no trailing or doubled spaces."""
    assert tidy("A  \n\n\n\nB  and   C\n\n") == "A\n\nB and C\n"
