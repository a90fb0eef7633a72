"""The tables, as SQLAlchemy Core. Migrations create them; this module only describes them
for queries (a test checks that the two agree on both databases).

State columns are plain strings checked in Python (the enums in `records` and
`dripper.engine.model`), not CHECK constraints: adding a state later must not need a
table rebuild on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa

from dripper.store.types import ID, JSONType, UTCDateTime

# Named constraints: a later SQLite migration (a table copy) can only drop or alter a
# constraint it can name.
metadata = sa.MetaData(
    naming_convention={
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True)


def _customer_fk(*, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(
        "customer_id",
        ID,
        sa.ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=nullable,
    )


# sqlite_autoincrement on every table with a surrogate key: SQLite then never reuses an
# id after a delete (`forget`), so a cursor such as "events processed up to id N" stays
# correct, as it is with PostgreSQL sequences.

customers = sa.Table(
    "customers",
    metadata,
    _id(),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("first_name", sa.Text, nullable=False, server_default=""),
    sa.Column("last_name", sa.Text, nullable=False, server_default=""),
    sa.Column("timezone", sa.String(64)),
    sa.Column("locale", sa.String(64)),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("attributes", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="subscribed"),
    sa.Column("unsubscribed_at", UTCDateTime),
    sa.Column("purchases", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("total_spent_cents", sa.BigInteger, nullable=False, server_default=sa.text("0")),
    sa.Column("first_purchase_at", UTCDateTime),
    sa.Column("last_purchase_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Given when the customer's first send is claimed (migration 0003): `referral_url`.
    sa.Column("referral_code", sa.String(32)),
    # 0-100 by lifetime spend (ties alike) and 1 = the best: refreshed by the planner.
    sa.Column("spend_percentile", sa.Integer),
    sa.Column("spend_rank", sa.Integer),
    # The topics the person kept (0012): NULL is every topic, so a topic added later
    # reaches everyone who never chose.
    sa.Column("topics", JSONType),
    # The lifetime models' values (0016, DESIGN 17): null until a fit, and after one that
    # could not be made.
    sa.Column("p_alive", sa.Float),
    sa.Column("expected_purchases_90d", sa.Float),
    sa.Column("expected_purchases_365d", sa.Float),
    sa.Column("predicted_clv_365d", sa.Float),
    sa.Index("ix_customers_referral_code", "referral_code", unique=True),
    sqlite_autoincrement=True,
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    _customer_fk(),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    # The id the event's sender gave it (0010): `(type, ext_id)` is unique, so a repeated
    # webhook or a file imported twice records nothing new. NULL (no id) may repeat.
    sa.Column("ext_id", sa.String(200)),
    sa.Index("ix_events_customer_type_at", "customer_id", "type", "at"),
    sa.Index("ix_events_type_at", "type", "at"),
    sa.Index("uq_events_type_ext_id", "type", "ext_id", unique=True),
    sqlite_autoincrement=True,
)

# event_id and converted_event_id point at events of the same customer and are deleted
# with them; they carry no foreign key because PostgreSQL would then scan enrollments for
# every event deleted by `forget` (or need two more indexes on a large table).
enrollments = sa.Table(
    "enrollments",
    metadata,
    _id(),
    _customer_fk(),
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("occurrence", sa.String(100), nullable=False),
    sa.Column("enrolled_at", UTCDateTime, nullable=False),
    sa.Column("event_id", ID),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("end_reason", sa.Text),
    sa.Column("converted_at", UTCDateTime),
    sa.Column("converted_event_id", ID),
    sa.Column("attributed_step", sa.String(100)),
    # A repeating `when` occurrence first seen not matching (0013): the next match starts
    # the next occurrence.
    sa.Column("lapsed_at", UTCDateTime),
    # Held out of the campaign (0016, `holdout:`): its steps are marked held, never sent.
    sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint(
        "customer_id", "campaign", "occurrence", name="uq_enrollments_customer_campaign_occ"
    ),
    sa.Index("ix_enrollments_campaign_status", "campaign", "status"),
    sqlite_autoincrement=True,
)

outbox = sa.Table(
    "outbox",
    metadata,
    _id(),
    sa.Column(
        "enrollment_id",
        ID,
        sa.ForeignKey("enrollments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The enrollment's customer, and no foreign key of its own (0006): `enrollment_id`
    # implies it with the same cascade, and each planned email would pay for the check.
    sa.Column("customer_id", ID, nullable=False),
    # Denormalised from the enrollment: the uniqueness rule and the stats read them
    # without a join.
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("occurrence", sa.String(100), nullable=False),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="planned"),
    sa.Column("variant", sa.Integer),
    sa.Column("message_id", sa.String(255), unique=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    # When the row may next be claimed: due_at at first, pushed back by deferrals.
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(255)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("reason", sa.Text),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # When a person first opened / clicked this email (0005): the stats' unique counts.
    sa.Column("opened_at", UTCDateTime),
    sa.Column("clicked_at", UTCDateTime),
    # What the step is (0015, DESIGN 16): "email", "task" or "webhook". An unsubscribe from
    # email cancels the planned emails and spares the rest.
    sa.Column("kind", sa.String(8), nullable=False, server_default="email"),
    sa.UniqueConstraint(
        "customer_id", "campaign", "occurrence", "step", name="uq_outbox_send_once"
    ),
    sa.Index("ix_outbox_claim", "status", "next_attempt_at"),
    sa.Index("ix_outbox_enrollment", "enrollment_id"),
    sqlite_autoincrement=True,
)

# A row is written before the message goes out: one without an outcome after a crash is
# an attempt that may have been delivered.
delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    _id(),
    sa.Column("outbox_id", ID, sa.ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("outcome", sa.String(16)),
    sa.Column("smtp_code", sa.Integer),
    sa.Column("smtp_enhanced", sa.String(16)),
    sa.Column("smtp_reply", sa.Text),
    sa.Column("error", sa.Text),
    sa.Index("ix_delivery_attempts_outbox", "outbox_id"),
    sqlite_autoincrement=True,
)

tracking_events = sa.Table(
    "tracking_events",
    metadata,
    _id(),
    sa.Column("outbox_id", ID, sa.ForeignKey("outbox.id", ondelete="CASCADE")),
    # The customer, and no foreign key of its own (0008): a hit's email names them (and
    # `outbox_id` cascades), and `forget` deletes every row of theirs itself. Every writer
    # keeps it equal to the email's customer.
    sa.Column("customer_id", ID),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    # An image proxy's open or a link scanner's click: kept, but reported apart.
    sa.Column("machine", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("url", sa.Text),
    sa.Column("user_agent", sa.Text),
    sa.Column("data", JSONType),
    # The email's campaign, step and variant, so the stats count without a join (0005).
    sa.Column("campaign", sa.String(100)),
    sa.Column("step", sa.String(100)),
    sa.Column("variant", sa.Integer),
    sa.Index("ix_tracking_events_outbox", "outbox_id"),
    sa.Index("ix_tracking_events_campaign_step", "campaign", "step"),
    # Only the rows tied to no email (a referral visit): the others are found by their
    # email, and every hit would pay for a random page of this index (0008).
    sa.Index(
        "ix_tracking_events_customer",
        "customer_id",
        sqlite_where=sa.text("outbox_id IS NULL"),
        postgresql_where=sa.text("outbox_id IS NULL"),
    ),
    sa.Index("ix_tracking_events_kind_at", "kind", "at"),
    sqlite_autoincrement=True,
)

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("address_hash", sa.String(64), primary_key=True),
    sa.Column("email", sa.String(320)),  # cleared when the customer is forgotten
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Mail that comes back, each message once (message_key: sha256 of its Message-ID).
inbound_messages = sa.Table(
    "inbound_messages",
    metadata,
    _id(),
    sa.Column("message_key", sa.String(64), nullable=False, unique=True),
    sa.Column("message_id", sa.Text),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("via", sa.String(8), nullable=False),
    sa.Column("customer_id", ID),
    sa.Column("outbox_id", ID),
    sa.Column("address", sa.String(320)),
    sa.Column("status", sa.String(16)),
    sa.Column("weak", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("subject", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("notify", sa.String(16)),
    sa.Column("answered_at", UTCDateTime),
    sa.Index("ix_inbound_messages_kind_at", "kind", "received_at"),
    sa.Index("ix_inbound_messages_address", "address", "kind", "received_at"),
    sa.Index("ix_inbound_messages_customer", "customer_id"),
    sqlite_autoincrement=True,
)

mailbox_state = sa.Table(
    "mailbox_state",
    metadata,
    sa.Column("mailbox", sa.String(255), primary_key=True),
    sa.Column("uidvalidity", sa.BigInteger, nullable=False),
    sa.Column("last_uid", sa.BigInteger, nullable=False),
    sa.Column("checked_at", UTCDateTime),
)

campaign_state = sa.Table(
    "campaign_state",
    metadata,
    sa.Column("campaign", sa.String(100), primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("paused_reason", sa.Text),
    sa.Column("data", JSONType, nullable=False),
    # The run of 5.7.x rejections since the last delivery: pauses at pause_after_policy.
    sa.Column("policy_hits", sa.Integer, nullable=False, server_default=sa.text("0")),
)

# A signup waiting for its confirmation (0012, DESIGN 13): no customer exists before the
# person confirms. `key` is random and travels only signed (/s/<token>). The confirmation
# email's own state (queued, sent, limited, failed) lives here, not in the outbox: the
# outbox's rows belong to customers' enrollments.
signups = sa.Table(
    "signups",
    metadata,
    _id(),
    sa.Column("key", sa.String(32), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("first_name", sa.Text, nullable=False, server_default=""),
    sa.Column("form", sa.String(64), nullable=False),
    sa.Column("topics", JSONType),
    sa.Column("locale", sa.String(64)),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.Text),
    sa.Column("text_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("message_id", sa.String(255)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Index("ix_signups_claim", "status", "next_attempt_at"),
    sa.Index("ix_signups_email", "email", "created_at"),
    sa.Index("ix_signups_ip", "ip", "created_at"),
    sa.Index("ix_signups_sent", "sent_at"),
    sa.Index("ix_signups_expires", "expires_at"),
    sqlite_autoincrement=True,
)

# Every change of a customer's marketing (0012, DESIGN 13): when, what, where from, and
# what the person was shown. Erased with the customer (`forget`).
consent_records = sa.Table(
    "consent_records",
    metadata,
    _id(),
    _customer_fk(),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("marketing", sa.String(16), nullable=False),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.Text),
    sa.Column("text_hash", sa.String(64)),
    sa.Column("topics", JSONType),
    sa.Index("ix_consent_records_customer", "customer_id", "at"),
    sqlite_autoincrement=True,
)

# Notes on the customer's sheet (0014, DESIGN 16): what a person at the shop wrote down.
customer_notes = sa.Table(
    "customer_notes",
    metadata,
    _id(),
    _customer_fk(),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("source", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_customer_notes_customer", "customer_id", "at"),
    sqlite_autoincrement=True,
)


# Tasks for a person (0015, DESIGN 16): made when a task step falls due, closed by hand.
tasks = sa.Table(
    "tasks",
    metadata,
    _id(),
    sa.Column(
        "outbox_id",
        ID,
        sa.ForeignKey("outbox.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    _customer_fk(),
    sa.Column("campaign", sa.String(100), nullable=False),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("assignee", sa.String(40), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("closed_by", sa.String(64)),
    sa.Column("note", sa.Text),
    sa.Column("link_key", sa.String(32), nullable=False, unique=True),
    sa.Index("ix_tasks_open", "status", "due_at"),
    sa.Index("ix_tasks_customer", "customer_id"),
    sqlite_autoincrement=True,
)

# Each person's morning digest of tasks, once a day (0015): claimed before it is sent.
task_digests = sa.Table(
    "task_digests",
    metadata,
    sa.Column("person", sa.String(40), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.Column("tasks", sa.Integer, nullable=False),
)


# Each fit of the lifetime models (0016, DESIGN 17): when, whether, why not, the parameters.
prediction_fits = sa.Table(
    "prediction_fits",
    metadata,
    _id(),
    sa.Column("fitted_at", UTCDateTime, nullable=False),
    sa.Column("fitted", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("customers", sa.Integer, nullable=False),
    sa.Column("repeat_buyers", sa.Integer, nullable=False),
    sa.Column("purchase_model", sa.JSON),
    sa.Column("spend_model", sa.JSON),
    sqlite_autoincrement=True,
)
