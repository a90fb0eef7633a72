"""A shop whose database holds the sends the inbound corpus (tests/data/inbound/) talks
about: each customer, an active welcome enrollment, and the sent email with the corpus's
Message-ID. What the intake tests run real messages against."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from dripper.customers.model import CustomerData
from dripper.engine.model import NewEnrollment, PlannedSend
from dripper.store import Store, bulk, open_store
from dripper.store.customers import _insert
from dripper.store.schema import customers, outbox
from tests.unit.test_inbound_classify import SENDS, TABLE

CORPUS = Path(__file__).parents[1] / "data" / "inbound"
NOW = datetime(2027, 3, 5, 12, 0, tzinfo=UTC)
SENT_AT = NOW - timedelta(days=4)
RETURN_PATH = "bounces@bounce.acme.test"
UNSUBSCRIBE = "unsubscribe@acme.test"

__all__ = ["CORPUS", "NOW", "SENDS", "TABLE", "configure", "corpus", "seed"]


def configure(config: Path) -> None:
    """VERP and the unsubscribe address the corpus uses."""
    text = config.read_text()
    text = text.replace('return_path = ""', f'return_path = "{RETURN_PATH}"')
    text = text.replace('unsubscribe_mailto = ""', f'unsubscribe_mailto = "{UNSUBSCRIBE}"')
    config.write_text(text)


def seed(db_url: str) -> None:
    """The corpus's customers and their sent emails (oldest first, as SENDS lists them)."""
    store = open_store(db_url)
    store.ensure_schema()
    try:
        _seed(store)
    finally:
        store.close()


def _seed(store: Store) -> None:
    emails = list(dict.fromkeys(s.email for s in SENDS))
    with store.transaction() as conn:
        _insert(conn, [CustomerData(email=e) for e in emails], {}, SENT_AT)
        ids = {r.email: r.id for r in conn.execute(sa.select(customers.c.email, customers.c.id))}
        planned = [
            (ids[s.email], NewEnrollment("welcome", f"seed:{s.delivery_id}", SENT_AT, None,
                                         (PlannedSend(s.step, SENT_AT, 0),)))
            for s in SENDS
        ]  # fmt: skip
        bulk.save_enrollments(conn, planned, now=SENT_AT)
        for order, send in enumerate(SENDS):
            conn.execute(
                sa.update(outbox)
                .where(outbox.c.occurrence == f"seed:{send.delivery_id}")
                .values(
                    status="sent",
                    sent_at=SENT_AT + timedelta(minutes=order),
                    message_id=send.message_id,
                )
            )


def corpus(name: str, *, message_id: str | None = None) -> bytes:
    """A corpus file, with another Message-ID when asked (the same bounce on another day)."""
    raw = (CORPUS / name).read_bytes()
    if message_id is not None:
        raw = re.sub(
            rb"^Message-ID:[^\r\n]*", f"Message-ID: <{message_id}>".encode(), raw, count=1,
            flags=re.MULTILINE | re.IGNORECASE,
        )  # fmt: skip
    return raw
