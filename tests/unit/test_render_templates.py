"""Templates: layouts and partials, errors that name file:line, filters, the text part,
HTML templates, mj-include, and compiling once per template version."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dripper.render import RenderError
from dripper.render.compiler import Mode
from dripper.tokens import Keyring
from tests.unit.test_render_support import (
    BASE_URL,
    NOW,
    POSTAL,
    SECRET,
    Campaign,
    Step,
    customer,
    make_renderer,
    render,
)


def test_layout_blocks_and_partials_are_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child fills the layout's blocks; the layout's include brings in the footer."""
    mail = render(make_renderer(tmp_path, monkeypatch))
    assert "<title>Welcome</title>" in mail.html
    assert "Hello Zoë!" in mail.html
    assert "Because you like espresso." in mail.html
    assert POSTAL in mail.html


def test_missing_variable_names_variable_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An undefined customer field is an error naming it and the template file:line."""
    with pytest.raises(RenderError) as caught:
        render(make_renderer(tmp_path, monkeypatch), "missing-var.mjml")
    assert str(caught.value) == "templates/missing-var.mjml:6: customer.nickname is undefined"
    assert (caught.value.file, caught.value.line) == ("templates/missing-var.mjml", 6)


def test_missing_variable_in_a_partial_names_the_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error inside an included partial points at the partial's own line."""
    with pytest.raises(RenderError) as caught:
        render(make_renderer(tmp_path, monkeypatch), "uses-broken-partial.mjml")
    assert str(caught.value) == "templates/partials/broken.mjml:3: no_such_variable is undefined"


def test_syntax_error_names_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Jinja syntax error is reported at its own file and line, before any email."""
    with pytest.raises(RenderError) as caught:
        render(make_renderer(tmp_path, monkeypatch), "syntax-error.mjml")
    assert caught.value.file == "templates/syntax-error.mjml"
    assert caught.value.line == 4
    assert "endfor" in caught.value.message


def test_check_reports_template_problems_as_file_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`check` returns Problems with the template file:line, and none for a good step."""
    renderer = make_renderer(tmp_path, monkeypatch)
    good = renderer.check(Campaign(), Step(), customer())
    bad = renderer.check(Campaign(), Step(template="missing-var.mjml"), customer())
    assert good == []
    assert [str(p) for p in bad] == ["templates/missing-var.mjml:6: customer.nickname is undefined"]


def test_subject_errors_point_at_the_campaign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subject that uses an unknown variable is reported at the campaign file and step line."""
    renderer = make_renderer(tmp_path, monkeypatch)
    problems = renderer.check(Campaign(), Step(subjects=("Hi {{ customer.nick }}",)), customer())
    assert [str(p) for p in problems] == [
        "campaigns/welcome.yaml:7: steps.hello: subject: customer.nick is undefined"
    ]


def test_subject_variants_and_line_breaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`variant` picks the subject (wrapping around); surrounding blanks are trimmed."""
    renderer = make_renderer(tmp_path, monkeypatch)
    step = Step(subjects=("  A {{ customer.first_name }}\n", "B"))
    subjects = [
        renderer.render(
            Campaign(), step, customer(), now=NOW, message_id=renderer.new_message_id(), variant=v
        ).subject
        for v in range(3)
    ]
    assert subjects == ["A Zoë", "B", "A Zoë"]


def test_filters_use_the_customers_zone_locale_and_currency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dates are shown in the customer's zone and language, money in the company currency."""
    template = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        "[{{ customer.created_at|date('long') }}] [{{ customer.total_spent|money }}] "
        "[{{ 1234.5|number }}] [{{ customer.birthday|date('d MMMM') }}] "
        "[{{ now|datetime('short') }}] [{{ 20|money('JPY') }}]"
        "</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"filters.mjml": template}, currency="EUR")
    danish = customer(attributes={"birthday": "1990-07-14"})
    american = customer(
        locale="en-US", timezone="America/New_York", attributes={"birthday": "1990-07-14"}
    )
    da = render(renderer, "filters.mjml", danish).html
    us = render(renderer, "filters.mjml", american).html
    # 23:30 UTC on New Year's Eve is already 1 January in Copenhagen, still 31 Dec in New York.
    assert "[1. januar 2027]" in da
    assert "[December 31, 2026]" in us
    assert "[1.234,50\xa0€]" in da
    assert "[€1,234.50]" in us
    assert "[1.234,5]" in da
    assert "[1,234.5]" in us
    assert "[14 juli]" in da
    assert "[14 July]" in us
    assert "[01.03.2027 10.00]" in da
    assert "[3/1/27, 4:00\u202fAM]" in us
    assert "[¥20]" in us


def test_derived_text_keeps_links_and_structure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a .txt beside it, the text part is derived: readable links, no markup."""
    mail = render(make_renderer(tmp_path, monkeypatch))
    assert "Hello Zoë!" in mail.text
    assert "See what is new (https://shop.test/new?from=email&step=hello)" in mail.text
    assert "Read the FAQ (https://shop.test/faq) or write to us (help@shop.test)." in mail.text
    assert "<" not in mail.text.replace("<b>", "")
    assert "\n\n\n" not in mail.text


def test_txt_template_beside_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .txt template with the same stem is the text part, rendered without escaping."""
    mail = render(
        make_renderer(tmp_path, monkeypatch), "with-text.mjml", customer(first_name="A&B")
    )
    assert mail.text.startswith("Text part written by hand for A&B.")
    assert "A&amp;B" in mail.html
    assert mail.text.count(POSTAL) == 1  # shown by the .txt: no footer added


def test_html_template_is_inlined_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An .html template gets its CSS inlined at compile time; media queries stay in <style>."""
    renderer = make_renderer(tmp_path, monkeypatch)
    regular = render(renderer, "plain.html")
    newcomer = render(renderer, "plain.html", customer(purchases=1))
    assert 'style="color:#369; font-size:18px"' in regular.html
    assert "@media (max-width: 480px)" in regular.html
    assert "Thank you for coming back" in regular.html
    assert "Thank you for coming back" not in newcomer.html
    assert "- Kenya AA (https://shop.test/kenya)" in regular.text
    assert renderer.compiles == 1
    assert renderer.template("plain.html").mode is Mode.COMPILED


def test_mj_include_inside_the_folder_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<mj-include> of a file in the templates folder is resolved, with its Jinja."""
    mail = render(make_renderer(tmp_path, monkeypatch), "mj-include.mjml")
    assert "Snippet for Zoë" in mail.html


def test_mj_include_outside_the_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<mj-include> pointing outside the templates folder is refused before MJML runs."""
    (tmp_path.parent / "secrets.mjml").write_text("<mj-text>SECRET</mj-text>")
    with pytest.raises(RenderError) as caught:
        render(make_renderer(tmp_path, monkeypatch), "mj-include-outside.mjml")
    assert "outside the templates folder" in caught.value.message
    assert (caught.value.file, caught.value.line) == ("templates/mj-include-outside.mjml", 3)


@pytest.mark.parametrize(
    "statement",
    [
        '{% include "../config.toml" %}',
        '{% extends "/etc/passwd" %}',
        '{% include "partials/../../config.toml" %}',
        "{% include customer.first_name %}",
        '{% import "partials/footer.mjml" as footer %}',
    ],
)
def test_jinja_cannot_reach_outside_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, statement: str
) -> None:
    """Includes and extends that leave the folder, or are not plain names, are refused."""
    renderer = make_renderer(tmp_path, monkeypatch, {"escape.mjml": statement})
    with pytest.raises(RenderError) as caught:
        render(renderer, "escape.mjml")
    assert caught.value.file == "templates/escape.mjml"
    assert "acme" not in str(caught.value).lower()


def test_super_and_multi_level_inheritance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grandchild's block with super() renders the parent's block content too."""
    templates = {
        "middle.mjml": '{% extends "layout.mjml" %}{% block title %}Middle{% endblock %}'
        "{% block content %}<mj-section><mj-column><mj-text>M</mj-text></mj-column>"
        "</mj-section>{% endblock %}",
        "leaf.mjml": '{% extends "middle.mjml" %}{% set greeting = "Hi" %}'
        "{% block title %}Leaf · {{ super() }}{% endblock %}",
    }
    mail = render(make_renderer(tmp_path, monkeypatch, templates), "leaf.mjml")
    assert "<title>Leaf · Middle</title>" in mail.html
    assert ">M</div>" in mail.html


def test_compiles_once_and_again_after_an_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renders reuse the compiled template; editing a partial recompiles on the next check."""
    renderer = make_renderer(tmp_path, monkeypatch)
    renderer.recheck_seconds = 0.0
    for _ in range(5):
        render(renderer)
    assert renderer.compiles == 1
    partial = tmp_path / "templates" / "partials" / "footer.mjml"
    partial.write_text(partial.read_text() + "<!-- edited, longer -->\n")
    st = partial.stat()
    os.utime(partial, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert "edited, longer" in render(renderer).html
    assert renderer.compiles == 2
    assert partial in renderer.template_files("welcome.mjml")


def test_template_mjml_cannot_compile_with_jinja_hidden_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jinja where MJML needs a real value (a width) compiles per email, still correctly."""
    template = (
        "<mjml><mj-body><mj-section>"
        "<mj-column width=\"{{ '40' if customer.purchases else '60' }}%\">"
        "<mj-text>Hi {{ customer.first_name }}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"width.mjml": template})
    mail = render(renderer, "width.mjml")
    compiled = renderer.template("width.mjml")
    assert compiled.mode is Mode.PER_EMAIL, compiled.reason
    assert "Hi Zoë" in mail.html
    assert "width:40%" in mail.html.replace(" ", "")
    assert POSTAL in mail.html  # the footer is still there
    problems = renderer.check(Campaign(), Step(template="width.mjml"), customer())
    assert [p.message for p in problems] == [
        f"compiled per email, which is slow: {compiled.reason}"
    ]


def test_links_built_by_jinja_are_tracked_per_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hrefs computed by Jinja (conditions, loops) are rewritten after rendering, each to
    a click token for the URL this customer actually got."""
    template = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>"
        '<a href="{% if customer.purchases > 1 %}https://shop.test/vip{% else %}'
        'https://shop.test/new{% endif %}">Go</a>'
        '{% for tag in customer.tags %}<a href="https://shop.test/t/{{ tag }}">{{ tag }}</a>'
        "{% endfor %}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"dyn.mjml": template})
    mail = render(renderer, "dyn.mjml", customer(tags=("espresso", "filter")))
    keyring = Keyring.from_secret(SECRET)
    urls = [
        keyring.verify(token).url
        for token in re.findall(rf'href="{BASE_URL}/c/([^"]+)"', mail.html)
    ]
    assert urls == [
        "https://shop.test/vip",
        "https://shop.test/t/espresso",
        "https://shop.test/t/filter",
    ]
    assert renderer.template("dyn.mjml").mode is Mode.COMPILED


def test_newsletter_edition_html_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An edition's HTML goes in the HTML part; the text part gets the edition's own text."""
    template = (
        '{% extends "layout.mjml" %}{% block title %}{{ edition.title }}{% endblock %}'
        "{% block content %}<mj-section><mj-column><mj-text>{{ edition.html|safe }}"
        "</mj-text></mj-column></mj-section>{% endblock %}"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"letter.mjml": template})
    mail = renderer.render(
        Campaign(), Step(template="letter.mjml", subjects=("{{ edition.title }}",)), customer(),
        now=NOW, message_id=renderer.new_message_id(), edition=Edition(),
    )  # fmt: skip
    assert mail.subject == "Grind fresh"
    assert "<p>Grind <em>just</em> before brewing.</p>" in mail.html
    assert "Grind *just* before brewing." in mail.text
    assert "<em>" not in mail.text
    # The edition's own links are tracked too, though they are not in the template.
    tokens = re.findall(rf'href="{BASE_URL}/c/([^"]+)"', mail.html)
    urls = {Keyring.from_secret(SECRET).verify(token).url for token in tokens}
    assert "https://shop.test/grinders?a=1&b=2" in urls
    assert "https://shop.test/grinders" not in mail.html


@dataclass(frozen=True)
class Edition:
    slug: str = "01-grind"
    title: str = "Grind fresh"
    html: str = (
        "<p>Grind <em>just</em> before brewing.</p>"
        '<p><a href="https://shop.test/grinders?a=1&amp;b=2">Our grinders</a></p>'
    )
    text: str = "Grind *just* before brewing.\n"


def test_per_email_text_part_keeps_real_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template compiled per email still derives readable links for its text part."""
    template = (
        '<mjml><mj-body><mj-section><mj-column width="{{ 50 }}%"><mj-text>'
        '<a href="https://shop.test/x">Shop</a></mj-text></mj-column></mj-section>'
        "</mj-body></mjml>"
    )
    renderer = make_renderer(tmp_path, monkeypatch, {"slow.mjml": template})
    mail = render(renderer, "slow.mjml")
    assert renderer.template("slow.mjml").mode is Mode.PER_EMAIL
    assert "Shop (https://shop.test/x)" in mail.text
    assert f"{BASE_URL}/c/" in mail.html


def test_whitespace_around_statements_survives_mjml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text and a link separated only by a statement and a line break are not glued
    together by MJML (which drops blank text next to comments)."""
    template = (
        "<mjml><mj-body><mj-section><mj-column><mj-text>Try it."
        "{% if customer.purchases %} Again.{% endif %}\n"
        '      <a href="https://shop.test/">Shop</a></mj-text></mj-column></mj-section>'
        "</mj-body></mjml>"
    )
    mail = render(make_renderer(tmp_path, monkeypatch, {"glue.mjml": template}), "glue.mjml")
    assert re.search(r"Again\.\s+<a ", mail.html)
    assert "Again. Shop (https://shop.test/)" in mail.text
