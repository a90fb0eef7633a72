"""Follow a link of a sent email through the real `dripper serve` app, in this process:
what `make demo` uses to show a one-click unsubscribe and a survey answer without a
server listening anywhere.

    python -m dripper.web.local --to grace@example.com --answer first_bag=poor
    python -m dripper.web.local --to new.buyer@example.com --unsubscribe

The link is taken from the newest `.eml` to that address in the file transport's folder,
and the request goes through the same ASGI app, routes and database as `dripper serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email
import email.policy
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dripper.config import Config, find_config, load_config
from dripper.errors import DripperError


def call(app: Any, method: str, path: str, body: bytes = b"", ua: str = "") -> tuple[int, bytes]:
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
            "headers": [
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


def newest_link(config: Config, to: str, kind: str, pattern: str = "") -> str:
    """The path of the first `/<kind>/` link matching `pattern` in the newest email to `to`."""
    folder = Path(config.transport["path"])
    base = re.escape(str(config.tracking["base_url"]))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dripper.web.local", description=__doc__)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--now", help="fix the app's clock, as `dripper --now` does")
    parser.add_argument("--to", required=True, help="the customer whose email holds the link")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--unsubscribe", action="store_true", help="the one-click POST")
    action.add_argument("--answer", metavar="QUESTION=ANSWER", help="a one-click answer")
    args = parser.parse_args(argv)
    from dripper.web.app import create_app

    try:
        config = load_config(find_config(args.config))
        if args.unsubscribe:
            path = newest_link(config, args.to, "u")
            method, body = "POST", b"List-Unsubscribe=One-Click"
        else:
            question, _, answer = args.answer.partition("=")
            encoded = base64.urlsafe_b64encode(answer.encode()).rstrip(b"=").decode()
            path = newest_link(config, args.to, "a", f".{question}.{encoded}.")
            method, body = "GET", b""
        clock = None
        if args.now:
            from dripper.timeparse import parse_instant

            moment = parse_instant(args.now)
            clock = lambda: moment  # noqa: E731
        app = create_app(config, clock=clock)
        status, content = call(app, method, path, body, ua="Mozilla/5.0 (demo)")
    except (DripperError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    heading = re.search(rb"<h1>(.*?)</h1>", content)
    shown = heading.group(1).decode() if heading else content[:80].decode(errors="replace")
    print(f"{method} {path[:40]}... -> {status} {shown}")
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
