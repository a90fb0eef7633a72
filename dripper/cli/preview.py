"""`dripper preview`: one email exactly as a customer would get it, or `--serve` a local
page with all of them. Imports stay light: no database, SMTP or DKIM stack unless the
customer asked for is only in the database (DESIGN 11: a preview in under 0.5 s)."""

from __future__ import annotations

from pathlib import Path

import click

from dripper.cli.common import app, config_option


@click.command()
@click.argument("campaign", required=False)
@click.argument("step", required=False)
@click.option(
    "--customer", "email", metavar="EMAIL", help="A sample customer (default: the first)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "text", "eml"]),
    default="html",
    show_default=True,
    help="The HTML part, the text part, or the whole message as sent.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option("--open", "open_", is_flag=True, help="Open the result (HTML in your browser).")
@click.option("--edition", metavar="SLUG", help="Newsletter edition (default: the first).")
@click.option("--variant", type=int, help="Subject variant, from 0 (default: the customer's).")
@click.option("--serve", is_flag=True, help="Serve a page with every campaign and step.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option("--port", default=8025, show_default=True, help="With --serve.")
@config_option
def preview(
    campaign: str | None,
    step: str | None,
    email: str | None,
    fmt: str,
    output: Path | None,
    open_: bool,
    edition: str | None,
    variant: int | None,
    serve: bool,
    host: str,
    port: int,
) -> None:
    """Render CAMPAIGN's STEP (default: its first) for a sample customer.

    Sample customers are the rows of `[project] samples` (customers.csv), previewed as
    customers who just made their first purchase. Links are the real tracked links,
    signed with a public preview key (no secret needed).
    """
    ctx = app()
    if serve:
        from dripper.preview.app import serve_previews

        serve_previews(ctx.config, host=host, port=port, now=ctx.now)
        return
    if campaign is None:
        raise click.UsageError("name a CAMPAIGN to preview (or use --serve)")
    from dripper.preview.build import Project, render
    from dripper.render.renderer import Renderer

    now = ctx.now()
    project = Project.load(ctx.config, now=now)
    chosen = project.campaign(campaign)
    chosen_step = project.step(chosen, step)
    if chosen_step.personal:  # a task or a webhook (DESIGN 16): what it would make
        from dripper.preview.build import personal_preview

        renderer = Renderer(ctx.config, preview=True)
        shown = personal_preview(renderer, chosen, chosen_step, project.customer(email), now=now)
        if output is not None:
            output.write_text(shown + "\n")
        else:
            click.echo(shown)
        return
    email_ = render(
        Renderer(ctx.config, preview=True),
        chosen,
        chosen_step,
        project.customer(email),
        now=now,
        edition=project.edition(chosen, edition),
        variant=variant,
    )
    data: bytes = {
        "html": email_.html.encode(),
        "text": email_.text.encode(),
        "eml": email_.mime,
    }[fmt]
    if open_ and output is None:
        import os
        import tempfile

        suffix = {"html": ".html", "text": ".txt", "eml": ".eml"}[fmt]
        fd, name = tempfile.mkstemp(prefix="dripper-", suffix=suffix)
        os.close(fd)
        output = Path(name)
    if output is not None:
        output.write_bytes(data)
        click.echo(f"{chosen.name}: {email_.subject!r} ({fmt}) written to {output}", err=True)
        if open_:
            click.launch(str(output))
        return
    import sys

    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
