"""`dripper serve`: the web half. Every link in every email lands here."""

from __future__ import annotations

from typing import Any

import click

from dripper.cli.common import app, config_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Processes (PostgreSQL: any number; SQLite: they share one writer).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies trusted for X-Forwarded-For (the client address of each hit).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 1_000_000),
    help="Open connections per process; past it new ones are answered 503. "
    "[default: [serve] max_connections, else 1000]",
)
@click.option(
    "--request-timeout",
    type=click.IntRange(1, 3600),
    help="Seconds a request (head and body) may take to arrive. "
    "[default: [serve] request_timeout, else 20]",
)
@click.option(
    "--keepalive-timeout",
    type=click.IntRange(1, 3600),
    help="Seconds an idle connection is kept open after an answer. "
    "[default: [serve] keepalive_timeout, else 5]",
)
@config_option
def serve(
    host: str,
    port: int,
    workers: int,
    forwarded_allow_ips: str,
    max_connections: int | None,
    request_timeout: int | None,
    keepalive_timeout: int | None,
) -> None:
    """Serve the open pixel, click redirects, unsubscribe pages, one-click answers,
    referral links, the events API and shop webhooks, /healthz and /metrics.

    Put it behind a TLS reverse proxy and set [tracking] base_url to its public https URL.
    Reached directly, it still bounds every client: 16 KiB of request head and 100 header
    lines (else 431), a whole request within --request-timeout, at most --max-connections.
    SIGTERM writes every hit already answered, then exits.
    """
    import os
    from dataclasses import replace

    import uvicorn

    from dripper.web.app import CONFIG_ENV, NOW_ENV, create_app
    from dripper.web.limits import PROTOCOL, Limits, configure, fit_to_file_limit

    ctx = app()
    config = ctx.config
    # Errors (the secret, the database, the schema) come out here, in one line, before
    # anything listens: with --workers each process would otherwise die on its own.
    web_app = create_app(config, store=ctx.store(), clock=ctx.now)
    # An option given wins over [serve] in the config, which wins over the defaults.
    section = config.serve
    limits = Limits(
        max_connections=section.max_connections if max_connections is None else max_connections,
        request_timeout=section.request_timeout if request_timeout is None else request_timeout,
        keepalive_timeout=(
            section.keepalive_timeout if keepalive_timeout is None else keepalive_timeout
        ),
    )
    fitted = fit_to_file_limit(limits.max_connections)
    if fitted < limits.max_connections:
        click.echo(
            f"max_connections {limits.max_connections:,} lowered to {fitted:,}: the open-file "
            "limit (ulimit -n; LimitNOFILE= in a systemd unit) allows no more",
            err=True,
        )
        limits = replace(limits, max_connections=fitted)
    configure(limits)  # the protocol of this process and of every worker reads them
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "proxy_headers": True,
        "forwarded_allow_ips": forwarded_allow_ips,
        "server_header": False,
        "date_header": True,
        "log_level": "warning",
        # At "warning" the access log prints nothing, yet each request still paid for
        # building its record (~2% of a pixel's CPU); and a token belongs in no log.
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        # uvicorn's httptools protocol with the limits above (dripper.web.limits). Not
        # uvicorn's limit_concurrency: it counts only requests whose head is all in.
        "http": PROTOCOL,
        "timeout_keep_alive": limits.keepalive_timeout,
        "ws": "none",  # no route is a websocket: an upgrade request is plain HTTP
    }
    if workers > 1:
        # Each worker process builds its own app from the config file (and the clock
        # `--now` fixed, for tests and the demo).
        if config.path is not None:
            os.environ[CONFIG_ENV] = str(config.path)
        if ctx.fixed_now is not None:
            os.environ[NOW_ENV] = ctx.fixed_now.isoformat()
        click.echo(
            f"dripper serve on http://{host}:{port}/ with {workers} worker processes "
            f"(base_url {config.tracking.base_url})"
        )
        uvicorn.run("dripper.web.app:app_from_environment", factory=True, workers=workers, **common)
        return
    click.echo(f"dripper serve on http://{host}:{port}/ (base_url {config.tracking.base_url})")
    uvicorn.run(web_app, **common)
