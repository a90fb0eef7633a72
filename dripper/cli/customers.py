"""`dripper customers ...`: import, add, show, export, forget, unsubscribe, top, answered."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option
from dripper.errors import InputError

if TYPE_CHECKING:
    from dripper.customers.model import Customer


def _address(email: str) -> str:
    from dripper.customers.addresses import normalize_email

    try:
        return normalize_email(email)
    except ValueError as exc:
        raise InputError(str(exc)) from None


@click.group()
@config_option
def customers() -> None:
    """Manage customers: import, add, show, export, forget, unsubscribe; the best of them
    (top); replies a person has answered (answered)."""


@customers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the good rows even if some are bad.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@config_option
def import_(file: Path, skip_invalid: bool, as_json: bool) -> None:
    """Import customers from a CSV file (columns: email, first_name, last_name, timezone,
    locale, tags; any other column becomes an attribute).

    A file with any bad row imports nothing (exit 2) unless --skip-invalid is given.
    Suppressed and unsubscribed addresses stay so.
    """
    from dripper.cli.customers_import import import_file

    summary = import_file(app(), file, skip_invalid=skip_invalid)
    if as_json:
        click.echo(json.dumps(summary.as_json(file)))
        return
    parts = [f"{summary.inserted:,} new", f"{summary.updated:,} updated"]
    if summary.merged:
        parts.append(f"{summary.merged:,} duplicate row(s) merged")
    if summary.suppressed:
        parts.append(f"{summary.suppressed:,} suppressed address(es) kept unsubscribed")
    if summary.bad_rows:
        parts.append(f"{summary.bad_rows:,} bad row(s) skipped")
    click.echo(f"{file}: {summary.rows:,} row(s): " + ", ".join(parts))


@customers.command()
@click.argument("email")
@click.option("--first-name", default=None)
@click.option("--last-name", default=None)
@click.option("--timezone", default=None, help="IANA name, e.g. Europe/Berlin.")
@click.option("--locale", default=None, help="e.g. en, pt-BR.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option(
    "--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="An attribute (repeatable)."
)
@config_option
def add(
    email: str,
    first_name: str | None,
    last_name: str | None,
    timezone: str | None,
    locale: str | None,
    tags: tuple[str, ...],
    attrs: tuple[str, ...],
) -> None:
    """Add a customer, or update the fields given for an existing one (`--tag` adds to
    their tags; `customers tag` removes one)."""
    import io

    from dripper.customers.addresses import normalize_email
    from dripper.customers.csvio import parse_customers

    if tags:  # added to the tags they have, never replacing them (DESIGN 14)
        try:
            existing = app().store().get_customer(normalize_email(email))
        except ValueError:
            existing = None  # the row check below names what is wrong with the address
        if existing is not None:
            tags = tuple(dict.fromkeys([*existing.tags, *tags]))

    # One row through the CSV validator: `add` and `import` accept exactly the same values.
    header = ["email", "first_name", "last_name", "timezone", "locale"]
    row = [email, first_name or "", last_name or "", timezone or "", locale or ""]
    if tags:
        header.append("tags")
        row.append(";".join(tags))
    for item in attrs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--attr {item!r}: expected KEY=VALUE")
        header.append(key.strip())
        row.append(value)
    buffer = io.StringIO()
    import csv

    csv.writer(buffer).writerows([header, row])
    buffer.seek(0)
    try:
        sheet = parse_customers(buffer)
    except UnicodeDecodeError:
        raise InputError("the address, a name or an attribute is not UTF-8 text") from None
    if sheet.problems:
        raise InputError("; ".join(p.message for p in sheet.problems))
    ctx = app()
    customer = ctx.store().add_customer(sheet.rows[0], now=ctx.now())
    click.echo(f"{customer.email}: {customer.status.value}")


MAX_NOTE = 2000  # characters: a note is a line or a paragraph, not a document


def clean_note(text: str) -> str:
    """A note as stored (a customer's, or a closed task's): trimmed plain text."""
    cleaned = text.strip()
    if not cleaned:
        raise InputError("the note is empty: write what you want to remember")
    if len(cleaned) > MAX_NOTE:
        raise InputError(f"the note has {len(cleaned):,} characters: at most {MAX_NOTE:,}")
    if any(not (ch.isprintable() or ch in "\n\t") for ch in cleaned):
        raise InputError("the note holds control characters: write plain text")
    return cleaned


@customers.command()
@click.argument("email")
@click.argument("text")
@config_option
def note(email: str, text: str) -> None:
    """Add a dated note to a customer's sheet (`customers show` lists them)."""
    cleaned = clean_note(text)
    address = _address(email)
    ctx = app()
    if not ctx.store().add_note(address, cleaned, now=ctx.now(), source="customers note"):
        raise InputError(f"{address}: no such customer")
    click.echo(f"{address}: note added")


@customers.command(context_settings={"ignore_unknown_options": True})  # -TAG is no option
@click.argument("email")
@click.argument("changes", nargs=-1, required=True, type=click.UNPROCESSED)
@config_option
def tag(email: str, changes: tuple[str, ...]) -> None:
    """Add and remove tags: `dripper customers tag EMAIL +vip -wholesale`."""
    add: list[str] = []
    remove: list[str] = []
    for change in changes:
        name = change[1:].strip()
        if change[:1] not in "+-" or not name or ";" in name or not name.isprintable():
            raise InputError(
                f"{change!r}: write +TAG to add a tag or -TAG to remove one, "
                "like +vip -wholesale (a tag has no ';')"
            )
        (add if change[0] == "+" else remove).append(name)
    address = _address(email)
    customer = app().store().change_tags(address, add, remove, now=app().now())
    if customer is None:
        raise InputError(f"{address}: no such customer")
    click.echo(f"{address}: tags {', '.join(customer.tags) or '(none)'}")


@customers.command()
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as JSON.")
@config_option
def show(email: str, as_json: bool) -> None:
    """Show a customer: fields, derived values, events, enrollments and planned/sent steps."""
    from dripper.cli.timeline import print_timeline, timeline_json

    address = _address(email)
    timeline = app().store().timeline(address)
    if timeline is None:
        raise InputError(f"{address}: no such customer")
    if as_json:
        click.echo(json.dumps(timeline_json(timeline), indent=2, default=str))
    else:
        print_timeline(timeline)


@customers.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File (default: stdout).",
)
@config_option
def export(output: Path | None) -> None:
    """Export every customer as CSV (cells a spreadsheet would run as formulas are escaped)."""
    from itertools import chain

    from dripper.customers.csvio import export_rows, write_csv

    store = app().store()
    names: dict[str, None] = {}
    for customer in store.iter_customers():  # first pass: the union of attribute names
        names.update(dict.fromkeys(customer.attributes))
    last: dict[int, tuple[datetime, str]] = {}  # the last consent change of this batch

    def with_consent() -> Iterator[Customer]:
        """Every customer; each thousand's last consent changes read in one query."""
        batch: list[Customer] = []
        for customer in chain(store.iter_customers(), [None]):
            if customer is not None:
                batch.append(customer)
            if batch and (customer is None or len(batch) >= 1000):
                last.clear()
                last.update(store.consent_latest([c.id for c in batch]))
                yield from batch
                batch = []

    rows = export_rows(with_consent(), sorted(names), consent=lambda c: last.get(c.id))
    if output is None:
        write_csv(sys.stdout, rows)
        # Flushed here, not at exit: a reader that left early (`| head`) is then handled
        # as the command's own BrokenPipeError (quietly), not reported by the interpreter.
        sys.stdout.flush()
    else:
        with output.open("w", newline="", encoding="utf-8") as handle:
            count = write_csv(handle, rows)
        click.echo(f"wrote {count:,} customer(s) to {output}", err=True)


@customers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
def forget(email: str, yes: bool) -> None:
    """Erase a customer and everything about them; keep only a hash of the address on the
    suppression list so they are never emailed again."""
    address = _address(email)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"forgetting {address} cannot be undone: add --yes to confirm")
        click.confirm(f"Erase {address} and all their history? This cannot be undone", abort=True)
    from dripper.services.privacy import forget as forget_customer

    ctx = app()
    if not forget_customer(ctx.config, ctx.store(), address, now=ctx.now()):
        raise InputError(f"{address}: no such customer (nothing erased)")
    click.echo(
        f"{address}: erased (with their emails in the file transport's folder); "
        "its hash stays on the suppression list"
    )


@customers.command()
@click.argument("email")
@config_option
def unsubscribe(email: str) -> None:
    """Unsubscribe a customer: nothing more is sent, planned emails are cancelled."""
    address = _address(email)
    ctx = app()
    if not ctx.store().unsubscribe(address, now=ctx.now()):
        raise InputError(f"{address}: no such customer")
    click.echo(f"{address}: unsubscribed")


@customers.command()
@click.option(
    "--percent",
    type=click.IntRange(1, 100),
    default=20,
    show_default=True,
    help="How large a share of the customers (by lifetime spend) to show.",
)
@click.option("--limit", type=click.IntRange(0), default=20, show_default=True,
              help="List at most this many of them (the summary counts them all).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
@click.option(
    "--predicted", is_flag=True, help="By predicted 365-day value (customers predict)."
)
@config_option
def top(percent: int, limit: int, as_json: bool, predicted: bool) -> None:
    """The best customers: the top PERCENT by lifetime spend (customer.spend_percentile >=
    100 - PERCENT, ties alike), best first, and the share of revenue they bring."""
    if predicted:  # DESIGN 17: the future, not the past
        from dripper.cli.customers_predict import top_predicted

        top_predicted(limit, as_json)
        return
    from dripper.services.stats import top_customers

    ctx = app()
    best = top_customers(ctx.store(), percent=percent, limit=limit)
    currency = str(ctx.config.company.get("currency") or "USD")
    share = best.top_cents / best.total_cents if best.total_cents else None
    if as_json:
        click.echo(
            json.dumps(
                {
                    "percent": percent,
                    "customers": best.count,
                    "of": best.everyone,
                    "revenue": _money(best.top_cents),
                    "total_revenue": _money(best.total_cents),
                    "share_of_revenue": None if share is None else round(share, 4),
                    "currency": currency,
                    "listed": [
                        {
                            "email": r.email,
                            "first_name": r.first_name,
                            "purchases": r.purchases,
                            "total_spent": _money(r.spent_cents),
                            "spend_percentile": r.percentile,
                            "spend_rank": r.rank,
                        }
                        for r in best.customers
                    ],
                },
                indent=2,
            )
        )
        return
    if share is None:
        click.echo(f"No revenue yet: none of the {best.everyone:,} customer(s) has bought.")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title_justify="left")
    for column in ("rank", "email", "name", "purchases", "spent", "percentile"):
        table.add_column(column, justify="left" if column in ("email", "name") else "right")
    for r in best.customers:
        table.add_row(  # names are the customers' own text, never markup
            str(r.rank),
            escape(r.email),
            escape(r.first_name or ""),
            f"{r.purchases:,}",
            f"{r.spent_cents / 100:,.2f}",
            str(r.percentile),
        )
    if best.customers:
        console.print(table)
    more = best.count - len(best.customers)
    if more > 0:
        console.print(f"... and {more:,} more (--limit)")
    console.print(
        f"The top {percent}% ({best.count:,} of {best.everyone:,} customers) bring "
        f"{100 * share:.0f}% of revenue ({best.top_cents / 100:,.2f} of "
        f"{best.total_cents / 100:,.2f} {currency})."
    )


def _money(cents: int) -> str:
    return f"{cents / 100:.2f}"


@customers.command()
@click.argument("email")
@config_option
def answered(email: str) -> None:
    """A person has answered EMAIL's replies: take them off the to-do of `dripper stats`."""
    from dripper.services.stats import mark_answered

    address = _address(email)
    ctx = app()
    closed = mark_answered(ctx.store(), address, now=ctx.now())
    if closed is None:
        raise InputError(f"{address}: no such customer")
    if closed == 0:
        click.echo(f"{address}: no reply was waiting for an answer")
    else:
        click.echo(f"{address}: {closed} repl{'y' if closed == 1 else 'ies'} marked answered")


def _predict_command() -> None:
    """`customers predict` lives in its own module (DESIGN 17)."""
    from dripper.cli.customers_predict import predict

    customers.add_command(predict)


_predict_command()
