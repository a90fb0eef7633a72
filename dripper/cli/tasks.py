"""`dripper tasks`: the open tasks for people (DESIGN 16), overdue first; `tasks done ID
[--note TEXT]` and `tasks skip ID` close one (the note goes on the customer's sheet)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from dripper.cli.common import app, config_option

if TYPE_CHECKING:
    from datetime import datetime

    from dripper.store.tasks import TaskRecord


@click.group(invoke_without_command=True)
@click.option("--all", "every", is_flag=True, help="Closed tasks too (after the open ones).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task, in a list.")
@click.option("--assignee", default=None, help="Only this person's (a key of [tasks] people).")
@config_option
@click.pass_context
def tasks(ctx: click.Context, every: bool, as_json: bool, assignee: str | None) -> None:
    """List open tasks for people, overdue first: id, due, assignee, customer, task,
    campaign/step. `tasks done ID --note TEXT` or `tasks skip ID` closes one."""
    if ctx.invoked_subcommand is not None:
        return
    from dripper.errors import InputError
    from dripper.store import tasks as stored

    context = app()
    people = [p.key for p in context.config.tasks.people]
    if assignee is not None and assignee not in people:
        known = ", ".join(people) or "none: add [tasks] people to config.toml"
        raise InputError(f"--assignee {assignee}: no such person in [tasks] people ({known})")
    now = context.now()
    with context.store().reading() as conn:
        found = stored.listed(conn, every=every, assignee=assignee)
    if as_json:
        click.echo(json.dumps([t.as_json(now) for t in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo("no open tasks" if not every else "no tasks")
        return
    for task in found:
        click.echo(line_of(task, now))
    still = sum(t.status == "open" for t in found)
    late = sum(t.overdue(now) for t in found)
    click.echo(f"{still} open" + (f", {late} overdue" if late else ""))


def line_of(task: TaskRecord, now: datetime) -> str:
    """One task as `dripper tasks` prints it."""
    if task.status == "open":
        state = f"due {task.due_at:%Y-%m-%d %H:%M}" + (" OVERDUE" if task.overdue(now) else "")
    else:
        when = f" {task.closed_at:%Y-%m-%d}" if task.closed_at else ""
        state = f"{task.status}{when}"
    who = task.who
    flag = " (unsubscribed from email)" if task.unsubscribed else ""
    note = f"\n      note: {task.note}" if task.note else ""
    return (
        f"#{task.id} [{state}] {task.assignee} · {who}{flag}\n"
        f"      {task.text}\n"
        f"      {task.campaign}/{task.step}{note}"
    )


def _close(task_id: int, status: str, note: str | None) -> None:
    from dripper.cli.customers import clean_note
    from dripper.store import tasks as stored

    cleaned = clean_note(note) if note is not None else None
    context = app()
    with context.store().transaction() as conn:
        task = stored.close(conn, task_id, status=status, now=context.now(), by="cli", note=cleaned)
    click.echo(f"task #{task.id} {status}: {task.text}")


@tasks.command()
@click.argument("task_id", type=int, metavar="ID")
@click.option("--note", default=None, help="What happened: kept on the customer's sheet.")
@config_option
def done(task_id: int, note: str | None) -> None:
    """Mark task ID done (with a note for the customer's sheet)."""
    _close(task_id, "done", note)


@tasks.command()
@click.argument("task_id", type=int, metavar="ID")
@click.option("--note", default=None, help="Why it was skipped: kept on the customer's sheet.")
@config_option
def skip(task_id: int, note: str | None) -> None:
    """Mark task ID skipped (it will not be done)."""
    _close(task_id, "skipped", note)
