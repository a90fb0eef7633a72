"""Issue 9 through the CLI on a scaffolded project: an oversized template is one clear
line (item 10); `check`, `preview` and `run` open no connection whatever the templates
say (item 11); a newsletter reads as plain text and its HTML carries the customer's
language (item 16)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.conftest import Project
from tests.unit.test_render_no_network import HTML_CASES, MJML_BODY_CASES, MJML_CASES
from tests.unit.test_render_support import Listener

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback socket that records every connection; closed after the test."""
    server = Listener()
    try:
        yield server
    finally:
        server.close()


@SQLITE
def test_check_refuses_a_48_mib_template_in_one_line(project: Project) -> None:
    """A 48 MiB template (sparse on disk) is refused by its size, naming the file and what
    to do, instead of being read and compiled."""
    with open(project.root / "templates" / "thank-you.mjml", "wb") as handle:
        handle.truncate(48 << 20)
    result = project.run("check")
    assert result.exit_code == 1
    assert (
        "templates/thank-you.mjml: template 'thank-you.mjml' is larger than 1 MiB "
        "(50,331,648 bytes): refused; link large images and files instead of embedding them"
    ) in result.output.splitlines()
    assert "Traceback" not in result.output


def _hostile_html(listener: Listener) -> str:
    """Every HTML bypass attempt of the unit corpus in one template (the unclosed
    <style> last: it swallows what follows)."""
    head: list[str] = []
    body: list[str] = []
    for name, snippet in sorted(HTML_CASES.items(), key=lambda item: "unclosed" in item[0]):
        url = f"{listener.base}/{name}.css"
        piece = snippet.replace("URL", url).replace("PORT", str(listener.port))
        (body if name.startswith("BODY:") or "unclosed" in name else head).append(piece)
    return (
        "<!DOCTYPE html>\n<html><head>" + "\n".join(head) + "</head><body>"
        "<p>Hi {{ customer.first_name }}</p>" + "\n".join(body) + "</body></html>"
    )


def _hostile_mjml(listener: Listener) -> str:
    """Every MJML way to name a stylesheet in one template."""

    def fill(snippet: str) -> str:
        return snippet.replace("URL", f"{listener.base}/mjml.css")

    head = "".join(
        fill(s).removeprefix("<mj-head>").removesuffix("</mj-head>") for s in MJML_CASES.values()
    )
    body = "".join(fill(s) for s in MJML_BODY_CASES.values())
    return (
        f"<mjml><mj-head>{head}</mj-head><mj-body>{body}<mj-section><mj-column><mj-text>"
        "Hi {{ customer.first_name }}</mj-text></mj-column></mj-section></mj-body></mjml>"
    )


@SQLITE
def test_check_preview_and_run_open_no_connection(
    project: Project, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With hostile .html and .mjml templates in the welcome campaign, `check`, `preview`
    in every format and `run --once` all succeed and the listener sees no connection."""
    monkeypatch.setenv("DRIPPER_SECRET", "test-secret-not-for-production")
    templates = project.root / "templates"
    (templates / "thank-you.html").write_text(_hostile_html(listener), encoding="utf-8")
    (templates / "second-sale.mjml").write_text(_hostile_mjml(listener), encoding="utf-8")
    (templates / "hostile.css").write_text(
        f"@import url({listener.base}/included.css); p {{ color: red }}", encoding="utf-8"
    )
    welcome = project.root / "campaigns" / "welcome.yaml"
    welcome.write_text(welcome.read_text().replace("thank-you.mjml", "thank-you.html"))

    check = project.run("check")
    assert check.exit_code == 0, check.output
    for step in ("thank-you", "second-sale"):
        for fmt in ("html", "text", "eml"):
            preview = project.run("preview", "welcome", step, "--format", fmt)
            assert preview.exit_code == 0, preview.output
    assert (
        project.run("event", "purchase", "ada@example.com", "--data", '{"amount": 10}').exit_code
        == 0
    )
    run = project.run("run", "--once")
    assert run.exit_code == 0, run.output
    assert len(list((project.root / "outbox").glob("*.eml"))) == 1

    assert listener.connections() == []


@SQLITE
def test_a_newsletter_reads_as_plain_text_in_its_language(project: Project) -> None:
    """The shipped newsletter previewed for ada (en-GB): the HTML says lang="en", the
    language it is written in (DESIGN 15), and the text part has headings and bold as
    plain text, not Markdown."""
    html = project.run(
        "preview", "value-newsletter", "--customer", "ada@example.com", "--format", "html"
    )
    assert html.exit_code == 0, html.output
    assert html.output.startswith('<!doctype html><html lang="en" ')
    text = project.run(
        "preview", "value-newsletter", "--customer", "ada@example.com", "--format", "text"
    )
    assert text.exit_code == 0, text.output
    assert "1. Weigh, do not scoop\n----------------------\n" in text.output
    assert "Start with 60 g of coffee per litre of water (about 1:16)." in text.output
    assert "- Espresso: fine, like table salt" in text.output
    assert "##" not in text.output
    assert "**" not in text.output
