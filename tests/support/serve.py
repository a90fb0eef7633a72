"""A real `dripper serve` process on a free loopback port, and a project whose emails
link to it: what the web tests drive over HTTP."""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
import sqlalchemy as sa
from click.testing import CliRunner, Result
from prometheus_client.parser import text_string_to_metric_families

from dripper.cli import cli
from dripper.store import open_store

SECRET = "web-tests-secret-0123456789abcdef"
API_TOKEN = "web-tests-api-token-0123456789"
SHOPIFY_SECRET = "shopify-webhook-secret-0123"
WOO_SECRET = "woocommerce-webhook-secret-0123"
ENV = {
    "DRIPPER_SECRET": SECRET,
    "DRIPPER_API_TOKEN": API_TOKEN,
    "DRIPPER_SHOPIFY_SECRET": SHOPIFY_SECRET,
    "DRIPPER_WOO_SECRET": WOO_SECRET,
}
PROGRAM = str(Path(sys.executable).parent / "dripper")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Shop:
    """A scaffolded project on one database whose links point at `port`."""

    root: Path
    port: int
    db_url: str
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str) -> Result:
        """`dripper ARGS` in-process, with the secrets set."""
        return self.runner.invoke(cli, ["--config", str(self.config), *args], env=ENV)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return result

    def emails(self) -> list[EmailMessage]:
        found = []
        for path in sorted((self.root / "outbox").glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found

    def email_to(self, address: str, subject: str = "") -> EmailMessage:
        """The email to `address` whose subject has `subject` in it."""
        for message in self.emails():
            if address in str(message["To"]) and subject in str(message["Subject"]):
                return message
        raise AssertionError(f"no email to {address} about {subject!r}")


def make_shop(root: Path, db_url: str) -> Shop:
    """`dripper init`, the database, links pointing at a free port, the shop webhooks on."""
    result = CliRunner().invoke(cli, ["init", str(root)])
    assert result.exit_code == 0, result.output
    port = free_port()
    config = root / "config.toml"
    text = config.read_text()
    text = text.replace('url = "sqlite:///dripper.db"', f'url = "{db_url}"')
    text = text.replace(
        'base_url = "http://127.0.0.1:8080"', f'base_url = "http://127.0.0.1:{port}"'
    )
    # The scaffold names DRIPPER_SHOPIFY_SECRET already; the tests' WooCommerce secret is
    # in a variable of their own.
    assert 'shopify_secret_env = "DRIPPER_SHOPIFY_SECRET"' in text
    text = text.replace(
        'woocommerce_secret_env = "DRIPPER_WOOCOMMERCE_SECRET"',
        'woocommerce_secret_env = "DRIPPER_WOO_SECRET"',
    )
    config.write_text(text)
    return Shop(root, port, db_url)


def last_id(shop: Shop, table: sa.Table) -> int:
    """The newest row's id (0 for none): a test of a shared shop counts the rows after it."""
    store = open_store(shop.db_url)
    try:
        with store.reading() as conn:
            return int(conn.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0)
    finally:
        store.close()


def links(message: EmailMessage, base_url: str) -> list[str]:
    """Every URL of ours in an email: its HTML and text parts and List-Unsubscribe."""
    found: list[str] = []
    pattern = re.compile(re.escape(base_url) + r"/[a-z]/[A-Za-z0-9._-]+")
    for part in message.walk():
        if part.get_content_type() in ("text/html", "text/plain"):
            found += pattern.findall(part.get_content())
    found += pattern.findall(str(message.get("List-Unsubscribe", "")))
    return sorted(set(found))


def samples(shop: Shop) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of serve's /metrics, by name and sorted labels."""
    answer = httpx.get(f"{shop.base_url}/metrics")
    assert answer.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def settle(shop: Shop) -> None:
    """Until serve has written every hit it answered: its queue empty, and still empty a
    flush later (a batch being taken may read as empty for an instant). A test that
    shares serve counts what it stores from here on, never the last test's hits."""
    deadline = time.monotonic() + 10
    empty = 0
    while empty < 2:
        assert time.monotonic() < deadline, "serve's hit queue did not drain"
        depth = samples(shop)[("dripper_hit_queue_depth", ())]
        empty = empty + 1 if depth == 0 else 0
        time.sleep(0.06)  # more than the writer's FLUSH


def lookups(shop: Shop) -> dict[str, float]:
    """`dripper_delivery_lookups_total` by answer, from /metrics."""
    text = httpx.get(f"{shop.base_url}/metrics").text
    found = {"memory": 0.0, "database": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "dripper_delivery_lookups_total":
                found[sample.labels["answer"]] = sample.value
    return found


class ServeProcess:
    """`dripper serve` in a process of its own: started, waited for, stopped by its pid."""

    def __init__(
        self,
        shop: Shop,
        *,
        now: str | None = None,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ):
        self.shop = shop
        self.now = now
        self.args = args
        self.env = {**os.environ, **ENV, **(extra_env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        # One log per port: a test may run a serve of its own beside the module's.
        self.log = shop.root / f"serve-{shop.port}.log"

    def start(self) -> ServeProcess:
        args = [PROGRAM, "--config", str(self.shop.config)]
        if self.now:
            args += ["--now", self.now]
        args += ["serve", "--port", str(self.shop.port), *self.args]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log, env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dripper serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.shop.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"dripper serve did not answer: {self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM, as systemd stops it: the queue is written first."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
