"""premailer made network-free: a real local HTTP server must receive no request."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from dripper.render.inline import drop_imports, inline_css
from tests.unit.test_render_support import make_renderer, render


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]]

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = b"p { color: red; }"
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def css_server() -> Iterator[tuple[str, list[str]]]:
    """A stylesheet server on a free loopback port; yields its base URL and its request log."""
    requests: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _page(base: str) -> str:
    return f"""<html><head>
<link rel="stylesheet" href="{base}/link.css">
<link rel="stylesheet" href="//127.0.0.1:{base.rsplit(":", 1)[1]}/protocol-relative.css">
<style>
@import url("{base}/import.css");
@import '{base}/import-quoted.css' screen;
@\\69mport "{base}/import-escaped.css";
p.lead {{ color: #123456; }}
</style>
<style media="screen">@import url({base}/import-media.css); h1 {{ font-weight: bold; }}</style>
</head><body><h1>Hi {{{{ customer.first_name }}}}</h1><p class="lead">Spring</p>
<p>{{{{ company.postal_address }}}} <a href="{{{{ unsubscribe_url }}}}">Unsubscribe</a></p>
</body></html>"""


def test_rendering_an_html_template_makes_no_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, css_server: tuple[str, list[str]]
) -> None:
    """<link> stylesheets and @import rules (plain, quoted, escaped, with media) pointing at
    a live local server are never fetched while compiling and rendering."""
    base, requests = css_server
    import urllib.request

    with urllib.request.urlopen(f"{base}/probe.css", timeout=5) as response:  # the server works
        assert response.read() == b"p { color: red; }"
    requests.clear()

    renderer = make_renderer(tmp_path, monkeypatch, {"net.html": _page(base)})
    mail = render(renderer, "net.html")
    render(renderer, "net.html")
    assert requests == []
    assert 'style="color:#123456"' in mail.html
    assert "import.css" not in mail.html  # the @import rules are gone, not just unfetched
    assert "Hi Zoë" in mail.html


def test_inline_css_alone_makes_no_request(css_server: tuple[str, list[str]]) -> None:
    """The inliner on its own, fed the same page, leaves the server untouched."""
    base, requests = css_server
    inline_css(_page(base).replace("{{", "").replace("}}", ""))
    assert requests == []


def test_drop_imports_keeps_other_rules() -> None:
    """Only @import rules go; a sheet without any is returned unchanged."""
    plain = "p { color: red }\n@media (max-width: 600px) { p { color: blue } }"
    assert drop_imports(plain) == plain
    cleaned = drop_imports('@import url("http://x.test/a.css");\np { color: red }')
    assert "@import" not in cleaned
    assert "color: red" in cleaned
