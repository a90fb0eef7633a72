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
@config_option
def serve(host: str, port: int, workers: int, forwarded_allow_ips: str) -> None:
    """Serve the open pixel, click redirects, unsubscribe pages, one-click answers,
    referral links, the events API and shop webhooks, /healthz and /metrics.

    Put it behind a TLS reverse proxy and set [tracking] base_url to its public https URL.
    SIGTERM writes every hit already answered, then exits.
    """
    import os

    import uvicorn

    from dripper.web.app import CONFIG_ENV, NOW_ENV, create_app

    ctx = app()
    config = ctx.config
    # Errors (the secret, the database, the schema) come out here, in one line, before
    # anything listens: with --workers each process would otherwise die on its own.
    web_app = create_app(config, store=ctx.store(), clock=ctx.now)
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
            f"(base_url {config.tracking['base_url']})"
        )
        uvicorn.run(
            "dripper.web.app:app_from_environment", factory=True, workers=workers, **common
        )
        return
    click.echo(f"dripper serve on http://{host}:{port}/ (base_url {config.tracking['base_url']})")
    uvicorn.run(web_app, **common)
