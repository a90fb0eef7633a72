"""`dripper send-test CAMPAIGN STEP --to EMAIL`: one step, rendered for a sample customer,
signed and sent now through the configured transport: the daemon's own path, minus the
outbox (nothing is planned or recorded, links are not tracked)."""

from __future__ import annotations

import click

from dripper.cli.common import app, config_option


@click.command("send-test")
@click.argument("campaign")
@click.argument("step")
@click.option("--to", "to", required=True, metavar="EMAIL", help="Where the test goes.")
@click.option("--customer", "email", metavar="EMAIL", help="Sample customer to render for.")
@click.option("--edition", metavar="SLUG", help="Newsletter edition (default: the first).")
@config_option
def send_test(campaign: str, step: str, to: str, email: str | None, edition: str | None) -> None:
    """Render CAMPAIGN's STEP for a sample customer and send it to EMAIL now."""
    import asyncio
    import dataclasses

    from dripper.cli.run import make_signer, make_transport
    from dripper.customers.addresses import normalize_email
    from dripper.errors import InputError
    from dripper.preview.build import Project, render
    from dripper.render.renderer import Renderer
    from dripper.transport.base import Envelope, Outcome, OutcomeKind

    ctx = app()
    try:
        address = normalize_email(to)
    except ValueError as exc:
        raise InputError(f"--to: {exc}") from None
    now = ctx.now()
    project = Project.load(ctx.config, now=now)
    chosen = project.campaign(campaign)
    customer = dataclasses.replace(project.customer(email), email=address)
    renderer = Renderer(ctx.config, tracking=False)
    rendered = render(
        renderer,
        chosen,
        project.step(chosen, step),
        customer,
        now=now,
        edition=project.edition(chosen, edition),
    )
    signer = make_signer(ctx)
    data = rendered.mime
    if signer is not None:
        data = signer.sign(data, timestamp=int(now.timestamp()))
    transport = make_transport(ctx)

    async def send() -> Outcome:
        try:
            return await transport.send(
                Envelope(rendered.message_id, renderer.sender.email, address, data)
            )
        finally:
            await transport.close()

    outcome = asyncio.run(send())
    click.echo(f"{chosen.name}/{step} to {address} via {transport.name}: {outcome}")
    if outcome.kind is not OutcomeKind.SENT:
        click.get_current_context().exit(1)
