"""Helpers shared by the test_render_* modules: a project folder with the fixture
templates, a customer, small stand-ins for a campaign and a step, and a loopback socket
that records connections. No tests here."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from dripper.config import Config, load_config
from dripper.customers.model import Customer, Status
from dripper.render import RenderedEmail, Renderer

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "templates"
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
SECRET_ENV = "DRIPPER_TEST_RENDER_SECRET"
SECRET = "test-secret-0123456789abcdefghij"
POSTAL = "1 Roastery Lane, Portland, OR 97201, USA"
BASE_URL = "https://t.shop.test"
CONFIG = f"""
[sender]
from = "Acme Coffee <hello@acme.test>"
reply_to = "hello@acme.test"
postal_address = "{POSTAL}"
unsubscribe_mailto = "{{mailto}}"

[company]
name = "Acme Coffee"
url = "https://acme.test"
currency = "{{currency}}"

[tracking]
base_url = "{BASE_URL}"
secret_env = "{SECRET_ENV}"
opens = {{opens}}
clicks = {{clicks}}
"""


@dataclass(frozen=True)
class Campaign:
    name: str = "welcome"
    description: str = "Thank first-time buyers"
    file: str = "campaigns/welcome.yaml"
    language: str | None = None


@dataclass(frozen=True)
class Step:
    template: str = "welcome.mjml"
    subjects: tuple[str, ...] = ("Welcome, {{ customer.first_name }}!",)
    id: str = "hello"
    line: int = 7


def make_config(
    tmp_path: Path,
    templates: dict[str, str] | None = None,
    *,
    opens: bool = True,
    clicks: bool = True,
    mailto: str = "",
    currency: str = "USD",
) -> Config:
    """A project in `tmp_path`: config.toml and templates/ (the fixtures plus `templates`)."""
    folder = tmp_path / "templates"
    if not folder.exists():
        shutil.copytree(FIXTURES, folder)
    for name, text in (templates or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        CONFIG.format(
            opens=str(opens).lower(), clicks=str(clicks).lower(), mailto=mailto, currency=currency
        ),
        encoding="utf-8",
    )
    return load_config(config)


def make_renderer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    templates: dict[str, str] | None = None,
    **options: Any,
) -> Renderer:
    """A Renderer for real sends (the secret set) over a fresh project."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return Renderer(make_config(tmp_path, templates, **options))


def customer(**fields: Any) -> Customer:
    values: dict[str, Any] = {
        "id": 1,
        "email": "zoe@example.com",
        "first_name": "Zoë",
        "last_name": "Ørsted",
        "timezone": "Europe/Copenhagen",
        "locale": "da",
        "tags": ("espresso",),
        "attributes": {"favorite_coffee": "Kenya AA"},
        "status": Status.SUBSCRIBED,
        "created_at": datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
        "purchases": 2,
        "total_spent": Decimal("1234.5"),
    }
    values.update(fields)
    return Customer(**values)


def render(
    renderer: Renderer,
    template: str = "welcome.mjml",
    who: Customer | None = None,
    language: str | None = None,
    **step: Any,
) -> RenderedEmail:
    return renderer.render(
        Campaign(language=language),
        Step(template=template, **step),
        who or customer(),
        now=NOW,
        message_id=renderer.new_message_id(),
    )


def parse(mime: bytes) -> EmailMessage:
    """The stdlib's reading of an email, strict policy."""
    message = email.message_from_bytes(mime, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(mime: bytes) -> tuple[str, str]:
    """(text, html) as the stdlib decodes them, line ends back to "\n" as in Python."""
    message = parse(mime)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return (
        str(text.get_content()).replace("\r\n", "\n"),
        str(html.get_content()).replace("\r\n", "\n"),
    )


class Listener:
    """A real TCP socket on a free loopback port that records every connection made to it:
    the target of every fetch a template tries. Nothing is served; a connection is enough
    to prove a fetch was attempted."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._peers: list[tuple[str, int]] = []
        self._requests: dict[tuple[str, int], bytes] = {}
        self._probes: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                with self._lock:
                    self._peers.append(peer[:2])
                conn.settimeout(0.5)
                try:
                    request = conn.recv(300)
                except OSError:
                    request = b""
                with self._lock:
                    self._requests[peer[:2]] = request

    def connections(self) -> list[str]:
        """Every connection so far, as its first request bytes. A probe connection of our
        own goes through the same accept queue first, so none still waiting is missed."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as probe:
            mine = probe.getsockname()[:2]
            self._probes.add(mine)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                with self._lock:
                    if mine in self._peers:
                        break
                time.sleep(0.005)
            else:
                raise AssertionError("the listener stopped accepting connections")
        with self._lock:
            return [
                self._requests.get(peer, b"").decode("latin-1").split("\r\n", 1)[0]
                or f"connection from {peer}"
                for peer in self._peers
                if peer not in self._probes
            ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
