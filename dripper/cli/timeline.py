"""`dripper customers show`: a customer's sheet and history, as a table or JSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dripper.store.records import Timeline


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def _predicted(c: Any) -> str:
    """The lifetime models' values (DESIGN 17), or why there are none."""
    if c.p_alive is None:
        return "no prediction yet (dripper customers predict)" if c.purchases else ""
    parts = [f"p_alive {c.p_alive:.2f}"]
    if c.expected_purchases_365d is not None:
        soon = c.expected_purchases_90d
        parts.append(
            f"{c.expected_purchases_365d:.2f} purchases"
            + (f" ({soon:.2f} in 90 days)" if soon is not None else "")
        )
    if c.predicted_clv_365d is not None:
        parts.append(f"worth {c.predicted_clv_365d:,.2f}")
    return ", ".join(parts)


def timeline_json(timeline: Timeline) -> dict[str, Any]:
    c = timeline.customer
    return {
        "customer": {
            "email": c.email,
            "first_name": c.first_name,
            "last_name": c.last_name,
            "timezone": c.timezone,
            "locale": c.locale,
            "tags": list(c.tags),
            "attributes": dict(c.attributes),
            "status": c.status.value,
            "marketing": c.status.value,
            "topics": None if c.topics is None else list(c.topics),
            "purchases": c.purchases,
            "total_spent": f"{c.total_spent:.2f}",
            "spend_percentile": c.spend_percentile,
            "spend_rank": c.spend_rank,
            "p_alive": c.p_alive,
            "expected_purchases_90d": c.expected_purchases_90d,
            "expected_purchases_365d": c.expected_purchases_365d,
            "predicted_clv_365d": c.predicted_clv_365d,
            "first_purchase_at": c.first_purchase_at.isoformat() if c.first_purchase_at else None,
            "last_purchase_at": c.last_purchase_at.isoformat() if c.last_purchase_at else None,
            "created_at": c.created_at.isoformat(),
        },
        "suppression": None
        if timeline.suppression is None
        else {
            "reason": timeline.suppression.reason.value,
            "since": timeline.suppression.created_at.isoformat(),
        },
        "events": [
            {"id": e.id, "type": e.type, "at": e.at.isoformat(), "data": dict(e.data)}
            for e in timeline.events
        ],
        "enrollments": [
            {
                "campaign": e.campaign,
                "occurrence": e.occurrence,
                "enrolled_at": e.enrolled_at.isoformat(),
                "status": e.status.value,
                "end_reason": e.end_reason,
                "attributed_step": e.attributed_step,
            }
            for e in timeline.enrollments
        ],
        "sends": [
            {
                "campaign": o.campaign,
                "occurrence": o.occurrence,
                "step": o.step,
                "due_at": o.due_at.isoformat(),
                "status": o.status.value,
                "variant": o.variant,
                "message_id": o.message_id,
                "attempts": o.attempts,
                "sent_at": o.sent_at.isoformat() if o.sent_at else None,
                "reason": o.reason,
            }
            for o in timeline.outbox
        ],
        "tracking": [
            {"kind": t.kind.value, "at": t.at.isoformat(), "machine": t.machine, "url": t.url}
            for t in timeline.tracking
        ],
        "consent": [change.as_json() for change in timeline.consent],
        "notes": [
            {"at": at.isoformat(), "text": text, "source": source}
            for at, text, source in timeline.notes
        ],
        "tasks": [
            {
                "id": task.id,
                "text": task.text,
                "assignee": task.assignee,
                "campaign": task.campaign,
                "step": task.step,
                "created": task.created_at.isoformat(),
                "due": task.due_at.isoformat(),
                "status": task.status,
                "closed": task.closed_at.isoformat() if task.closed_at else None,
                "note": task.note,
            }
            for task in timeline.tasks
        ],
    }


def print_timeline(timeline: Timeline) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    c = timeline.customer
    name = " ".join(p for p in (c.first_name, c.last_name) if p) or "(no name)"
    status = c.status.value
    reason = timeline.suppression.reason.value if timeline.suppression is not None else None
    if reason is not None and reason != status:  # "unsubscribed" twice says nothing more
        status += f", suppressed: {reason}"
    from rich.markup import escape

    console.print(f"[bold]{escape(c.email)}[/bold]  {escape(name)}  ({status})", markup=True)
    facts = [
        ("time zone", c.timezone or "(config default)"),
        ("locale", c.locale or ""),
        ("tags", ", ".join(c.tags)),
        ("topics", "every topic" if c.topics is None else ", ".join(c.topics) or "none"),
        ("purchases", f"{c.purchases} (total spent {c.total_spent:.2f})"),
        (
            "spend",
            f"percentile {c.spend_percentile}, rank {c.spend_rank}"
            if c.spend_percentile is not None
            else "",
        ),
        ("first / last purchase", f"{_when(c.first_purchase_at)} / {_when(c.last_purchase_at)}"),
        ("predicted (365 days)", _predicted(c)),
        ("added", _when(c.created_at)),
    ]
    facts += [(key, str(value)) for key, value in sorted(c.attributes.items())]
    for key, value in facts:
        if value.strip(" /"):
            console.print(f"  {key:<22} {value}", markup=False)

    rows: list[tuple[datetime, str, str, str]] = []
    rows += [(e.at, "event", e.type, _data(e.data.items())) for e in timeline.events]
    for e in timeline.enrollments:
        end = f"{e.status.value}" + (f": {e.end_reason}" if e.end_reason else "")
        rows.append((e.enrolled_at, "enrolled", f"{e.campaign} ({e.occurrence})", end))
    for o in timeline.outbox:
        detail = o.status.value + (f": {o.reason}" if o.reason else "")
        if o.variant:
            detail += f" (variant {o.variant})"
        rows.append((o.sent_at or o.due_at, "send", f"{o.campaign} / {o.step}", detail))
    rows += [
        (t.at, t.kind.value, t.url or "", "machine" if t.machine else "") for t in timeline.tracking
    ]
    for at, text, source in timeline.notes:  # notes on the sheet (DESIGN 16)
        rows.append((at, "note", text, source))
    for task in timeline.tasks:  # tasks for a person, closed ones with their notes
        if task.closed_at is None:
            detail = f"#{task.id} open for {task.assignee}, due {task.due_at:%Y-%m-%d}"
            rows.append((task.created_at, "task", task.text, detail))
        else:
            detail = f"#{task.id} {task.status} ({task.closed_by})"
            detail += f": {task.note}" if task.note else ""
            rows.append((task.closed_at, "task", task.text, detail))
    for change in timeline.consent:  # the consent record (DESIGN 13)
        said = [change.source] if change.source else []
        if change.ip:
            said.append(f"from {change.ip}")
        if change.text_hash:
            said.append(f"text {change.text_hash[:12]}")
        if change.topics is not None:
            said.append("topics " + (", ".join(change.topics) or "none"))
        rows.append((change.at, "consent", f"{change.kind} -> {change.marketing}", "; ".join(said)))
    if not rows:
        console.print("  no events or sends yet")
        return
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in ("when", "what", "", "detail"):
        table.add_column(column)
    for when, kind, what, detail in sorted(rows, key=lambda r: r[0]):
        table.add_row(_when(when), kind, what, detail)
    console.print(table)


def _data(items: Iterable[tuple[str, Any]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in items)
