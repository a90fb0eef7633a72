"""Follow a link of a sent email through the real `dripper serve` app, in this process:
what `make demo` uses to show a one-click unsubscribe and a survey answer without a
server listening anywhere.

    python -m dripper.web.local --to grace@example.com --answer first_bag=poor
    python -m dripper.web.local --to new.buyer@example.com --unsubscribe
    python -m dripper.web.local --to grace@example.com --shopify-order 1001
    python -m dripper.web.local --to reader@example.com --subscribe news
    python -m dripper.web.local --to reader@example.com --confirm

The link is taken from the newest `.eml` to that address in the file transport's folder,
and the request goes through the same ASGI app, routes and database as `dripper serve`.
`--subscribe TOPICS` posts the signup form (`[signup]` must be enabled) as a reader's
browser would; `--confirm` presses the button behind the newest confirm link.
`--shopify-order N` posts Shopify's `orders/create` webhook for an order numbered N by
that customer (the shipped sample order), signed with the secret `[api]
shopify_secret_env` names, as Shopify would.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email
import email.policy
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dripper.config import Config, find_config, load_config
from dripper.errors import DripperError


def call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    ua: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, bytes]:
    """One request through an ASGI app, its lifespan included (the hit writer drains)."""

    async def run() -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []
        startup = asyncio.Queue[dict[str, Any]]()
        await startup.put({"type": "lifespan.startup"})
        lifespan_out: list[dict[str, Any]] = []

        async def life_receive() -> dict[str, Any]:
            return await startup.get()

        async def life_send(message: dict[str, Any]) -> None:
            lifespan_out.append(message)

        life = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, life_receive, life_send)
        )
        while not lifespan_out:
            await asyncio.sleep(0.01)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers
            or [
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"user-agent", ua.encode()),
            ],
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 80),
        }
        chunks = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return chunks.pop(0) if chunks else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        await startup.put({"type": "lifespan.shutdown"})
        await life
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, content

    return asyncio.run(run())


def newest_email(config: Config, to: str, lines: int = 12) -> str:
    """The subject and the first `lines` lines of the text of the newest email to `to`."""
    folder = Path(config.transport.path)
    found: list[tuple[float, Path]] = []
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to.lower() in str(message["To"]).lower():
            found.append((path.stat().st_mtime, path))
    if not found:
        raise DripperError(f"no email to {to} in {folder}")
    message = email.message_from_bytes(max(found)[1].read_bytes(), policy=email.policy.default)
    text = next(
        (p.get_content() for p in message.walk() if p.get_content_type() == "text/plain"), ""
    )
    body = [line for line in str(text).splitlines() if line.strip()][:lines]
    return "\n".join([f"Subject: {message['Subject']}", *(f"  {line}" for line in body)])


def newest_link(config: Config, to: str, kind: str, pattern: str = "") -> str:
    """The path of the first `/<kind>/` link matching `pattern` in the newest email to `to`."""
    folder = Path(config.transport.path)
    base = re.escape(str(config.tracking.base_url))
    found: list[tuple[float, str]] = []
    for path in folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to.lower() not in str(message["To"]).lower():
            continue
        text = "\n".join(
            part.get_content()
            for part in message.walk()
            if part.get_content_type() == "text/html"
        )
        text += str(message.get("List-Unsubscribe", ""))
        for url in re.findall(base + rf"/{kind}/[A-Za-z0-9._-]+", text):
            if pattern in url:
                found.append((path.stat().st_mtime, url))
    if not found:
        raise DripperError(f"no email to {to} in {folder} has such a /{kind}/ link")
    return urlsplit(max(found)[1]).path


SAMPLE_ORDER = Path(__file__).resolve().parent / "samples" / "shopify-order.json"


def shopify_order(
    config: Config, to: str, number: int, at: datetime | None = None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The shipped sample `orders/create` payload as order `number` of customer `to`
    (placed at `at`, if given), and the headers Shopify sends with it (the body signed
    with the configured secret)."""
    import hashlib
    import hmac
    import json

    env_name = str(config.api.shopify_secret_env or "")
    secret = config.secret(env_name) if env_name else None
    if not secret:
        raise DripperError(
            f"set {env_name or '[api] shopify_secret_env'} to the webhook's signing secret"
        )
    order = json.loads(SAMPLE_ORDER.read_text(encoding="utf-8"))
    order["id"] = 820982911946154500 + number
    order["name"] = f"#{number}"
    order["order_number"] = number
    order["email"] = order["contact_email"] = to
    order["customer"]["email"] = to
    if at is not None:
        order["created_at"] = order["processed_at"] = at.isoformat()
    body = json.dumps(order).encode()
    signature = base64.b64encode(hmac.digest(secret.encode(), body, hashlib.sha256))
    return body, [
        (b"content-type", b"application/json"),
        (b"x-shopify-topic", b"orders/create"),
        (b"x-shopify-hmac-sha256", signature),
        (b"x-shopify-webhook-id", f"b54557e4-{number}".encode()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dripper.web.local", description=__doc__)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--now", help="fix the app's clock, as `dripper --now` does")
    parser.add_argument("--to", required=True, help="the customer whose email holds the link")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--unsubscribe", action="store_true", help="the one-click POST")
    action.add_argument("--answer", metavar="QUESTION=ANSWER", help="a one-click answer")
    action.add_argument(
        "--shopify-order", metavar="NUMBER", type=int, help="Shopify's orders/create webhook"
    )
    action.add_argument(
        "--show", action="store_true", help="print the newest email's subject and text"
    )
    action.add_argument(
        "--subscribe", metavar="TOPICS", help="post the signup form (topics comma-separated)"
    )
    action.add_argument("--confirm", action="store_true", help="confirm the newest signup")
    args = parser.parse_args(argv)
    from dripper.web.app import create_app

    try:
        config = load_config(find_config(args.config))
        moment = None
        if args.now:
            from dripper.timeparse import parse_instant

            moment = parse_instant(args.now)
        if args.show:
            print(newest_email(config, args.to))
            return 0
        headers = None
        if args.shopify_order is not None:
            path, method = "/api/shopify", "POST"
            body, headers = shopify_order(config, args.to, args.shopify_order, moment)
        elif args.subscribe is not None:
            from urllib.parse import urlencode

            fields = [("email", args.to), *(("topics", t) for t in args.subscribe.split(",") if t)]
            path, method, body = "/subscribe", "POST", urlencode(fields).encode()
        elif args.confirm:
            path, method, body = newest_link(config, args.to, "s"), "POST", b""
        elif args.unsubscribe:
            path = newest_link(config, args.to, "u")
            method, body = "POST", b"List-Unsubscribe=One-Click"
        else:
            question, _, answer = args.answer.partition("=")
            encoded = base64.urlsafe_b64encode(answer.encode()).rstrip(b"=").decode()
            path = newest_link(config, args.to, "a", f".{question}.{encoded}.")
            method, body = "GET", b""
        clock = None
        if moment is not None:
            fixed = moment
            clock = lambda: fixed  # noqa: E731
        app = create_app(config, clock=clock)
        status, content = call(app, method, path, body, ua="Mozilla/5.0 (demo)", headers=headers)
    except (DripperError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if headers is not None:  # a webhook: its JSON answer says what was recorded
        print(f"{method} {path} -> {status} {content.decode(errors='replace')}")
        return 0 if status < 400 else 1
    heading = re.search(rb"<h1>(.*?)</h1>", content)
    shown = heading.group(1).decode() if heading else content[:80].decode(errors="replace")
    print(f"{method} {path[:40]}... -> {status} {shown}")
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
