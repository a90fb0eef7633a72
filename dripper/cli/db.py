"""`dripper db upgrade`: apply the schema migrations."""

from __future__ import annotations

import click

from dripper.cli.common import app, config_option


@click.group()
@config_option
def db() -> None:
    """Manage the database schema."""


@db.command()
@config_option
def upgrade() -> None:
    """Apply every pending migration (safe to run at any time)."""
    from dripper.store import open_store

    store = open_store(app().config.database_url)
    try:
        before = store.current_revision()
        store.upgrade()
        after = store.current_revision()
    finally:
        store.close()
    if before == after:
        click.echo(f"database schema is up to date ({after})")
    else:
        click.echo(f"database schema upgraded from {before or 'empty'} to {after}")
