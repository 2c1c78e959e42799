"""The store's tables: requests, their campaigns with their state, the outbox of events, the
live workers, and the messages that came back."""

from __future__ import annotations

import sqlalchemy as sa

from adapters.store.states import PENDING_CREATE

SCHEMA_VERSION = 5

_PENDING_CREATE_SQL = " OR ".join(f"state = '{state}'" for state in PENDING_CREATE)
_WAITING_SQL = "published_at IS NULL AND set_aside_at IS NULL"

metadata = sa.MetaData()

# The workers' columns added by schema version 3, so that health and status can read them.
PLATFORM_VIEW_COLUMNS = (
    sa.Column("platform_ok_at", sa.DateTime),
    sa.Column("platform_failing_since", sa.DateTime),
    sa.Column("platform_error", sa.String(255)),
    sa.Column("paused_since", sa.DateTime),
    sa.Column("paused_until", sa.DateTime),
    sa.Column("pause_status", sa.Integer),
)

schema_meta = sa.Table(
    "callbridge_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

# A request: what is the request's, and its outcome once every campaign of it is settled.
requests_table = sa.Table(
    "callbridge_requests",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    # pending until every campaign is settled, then created or failed; or rejected
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32)),
    sa.Column("project_id", sa.BigInteger),
    sa.Column("scenario_id", sa.BigInteger),
    sa.Column("start_block_id", sa.BigInteger),
    sa.Column("correlation_id", sa.String(255)),
    sa.Column("reply_to", sa.String(255)),
    sa.Column("purpose", sa.String(64)),
    # The request's schedule.timezone (none for a request stored before campaigns were planned).
    sa.Column("timezone", sa.String(64)),
    # How many campaigns the request was planned as.
    sa.Column("campaign_count", sa.Integer),
    sa.Column("phones_rejected", sa.Text),
    sa.Column("report_columns", sa.Text),
    sa.Column("report_delay_minutes", sa.Integer),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# A planned campaign of a request, with its own claim, ``sending`` mark and settlement.
campaigns_table = sa.Table(
    "callbridge_campaigns",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    # 1-based: the planned campaign's number (the ``group`` of ``phones_unknown``).
    sa.Column("group_no", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32)),
    # The exact bytes POSTed to the platform, built once at intake.
    sa.Column("create_body", sa.LargeBinary),
    # JSON [[e164, external_id], ...]: what report rows are mapped back to.
    sa.Column("contacts", sa.Text),
    sa.Column("phones_accepted", sa.Integer),
    # The calling window as the platform reads it (UTC), and as it was told it (none for a
    # campaign stored before campaigns were planned: it was sent as the CRM wrote it).
    sa.Column("window_start", sa.DateTime),
    sa.Column("window_end", sa.DateTime),
    sa.Column("platform_date", sa.String(10)),
    sa.Column("platform_start", sa.String(5)),
    sa.Column("platform_end", sa.String(5)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("report_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_attempt_at", sa.DateTime),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("owner", sa.BigInteger),
    sa.Column("campaign_id", sa.BigInteger),
    sa.Column("report_due_at", sa.DateTime),
    # The platform's last answer that was not a campaign: its status and message.
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # What every step of the campaign needs of its request, copied at intake (none of it ever
    # changes): claiming a campaign then reads one row, as claiming a request did.
    sa.Column("project_id", sa.BigInteger),
    sa.Column("scenario_id", sa.BigInteger),
    sa.Column("start_block_id", sa.BigInteger),
    sa.Column("correlation_id", sa.String(255)),
    sa.Column("reply_to", sa.String(255)),
    sa.Column("report_delay_minutes", sa.Integer),
    sa.Column("campaign_count", sa.Integer),
    sa.UniqueConstraint("request_id", "group_no", name="uq_callbridge_campaigns_group"),
    sa.Index("ix_callbridge_campaigns_due", "state", "next_attempt_at"),
    # The creation claim's scan, in due order: without it, finding the most overdue of the
    # received and retry rows sorted all of them, at every claim of a large backlog.
    sa.Index(
        "ix_callbridge_campaigns_create_due",
        "next_attempt_at",
        "id",
        postgresql_where=sa.text(_PENDING_CREATE_SQL),
        sqlite_where=sa.text(_PENDING_CREATE_SQL),
    ),
    sa.Index("ix_callbridge_campaigns_campaign", "campaign_id"),
)

outbox_table = sa.Table(
    "callbridge_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),
    sa.Column("request_id", sa.String(128)),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # JSON of the AMQP properties and headers to publish with.
    sa.Column("properties", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("published_at", sa.DateTime),
    # How often the broker refused (nacked) it, and when to try again after the last refusal.
    sa.Column("refusals", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_at", sa.DateTime),
    # An event the broker refuses for good is set aside, so that the others flow on.
    sa.Column("set_aside_at", sa.DateTime),
    sa.Column("set_aside_reason", sa.Text),
    sa.Index("ix_callbridge_outbox_pending", "published_at", "id"),
    # The relay's scan: set-aside events would otherwise be passed over at every poll.
    sa.Index(
        "ix_callbridge_outbox_waiting",
        "id",
        postgresql_where=sa.text(_WAITING_SQL),
        sqlite_where=sa.text(_WAITING_SQL),
    ),
)

workers_table = sa.Table(
    "callbridge_workers",
    metadata,
    sa.Column("worker_key", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
    # What the worker has seen of the platform, written with each heartbeat (``PlatformView``).
    *PLATFORM_VIEW_COLUMNS,
)

# Messages delivered again (the broker's ``redelivered`` flag), counted before intake handles
# them, so that a message which keeps failing, or keeps killing the worker, ends after
# ``MAX_DELIVERIES``. A row goes when its message is settled.
deliveries_table = sa.Table(
    "callbridge_deliveries",
    metadata,
    # SHA-256 (hex) of the message_id and the body.
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    # How an operator finds it: its message_id (fitted to 255 bytes), or sha256:<body hash>.
    sa.Column("message_key", sa.String(255), nullable=False),
    sa.Column("deliveries", sa.Integer, nullable=False),
    sa.Column("first_at", sa.DateTime, nullable=False),
    sa.Column("last_at", sa.DateTime, nullable=False),
    sa.Index("ix_callbridge_deliveries_last", "last_at"),
)

# What operators did, from the console or the CLI: who, what, when, from where, and what came
# of it. Rows are only ever added.
audit_table = sa.Table(
    "callbridge_audit",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    # The client's address (the console), or ``cli@<host>``.
    sa.Column("address", sa.String(255), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("request_id", sa.String(128)),
    # What else the action concerned: a dead letter's id, a campaign id.
    sa.Column("subject", sa.String(255)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_callbridge_audit_request", "request_id", "id"),
)

# The console's lists and counts: the newest requests first, by key, and those received over a
# time window by state.
sa.Index(
    "ix_callbridge_requests_received",
    requests_table.c.received_at,
    requests_table.c.request_id,
    # On PostgreSQL, counting a window's requests by state reads the index alone.
    postgresql_include=["state"],
)
sa.Index(
    "ix_callbridge_requests_state_received",
    requests_table.c.state,
    requests_table.c.received_at,
    requests_table.c.request_id,
)
sa.Index(
    "ix_callbridge_requests_project_received",
    requests_table.c.project_id,
    requests_table.c.received_at,
    requests_table.c.request_id,
)
sa.Index(
    "ix_callbridge_requests_purpose_received",
    requests_table.c.purpose,
    requests_table.c.received_at,
    requests_table.c.request_id,
)
# A request's events, for its page (and ``callbridge status``): without it, a full scan.
sa.Index("ix_callbridge_outbox_request", outbox_table.c.request_id, outbox_table.c.id)
# What waits for an operator, for the console's "needs attention": a few among a million.
_UNKNOWN_SQL = "state = 'failed' AND outcome = 'unknown'"
_REPORT_FAILED_SQL = "state = 'report_failed'"
for _name, _where in (("unknown", _UNKNOWN_SQL), ("report_failed", _REPORT_FAILED_SQL)):
    sa.Index(
        f"ix_callbridge_campaigns_{_name}",
        campaigns_table.c.updated_at,
        campaigns_table.c.id,
        postgresql_where=sa.text(_where),
        sqlite_where=sa.text(_where),
    )
# The events the relay set aside, for the console's "needs attention": a handful among millions.
sa.Index(
    "ix_callbridge_outbox_set_aside",
    outbox_table.c.id,
    postgresql_where=outbox_table.c.set_aside_at.is_not(None),
    sqlite_where=outbox_table.c.set_aside_at.is_not(None),
)

# Each platform call a step made and its answer, written with its settlement: a request's
# timeline shows every attempt, the overview the platform's latency and outcomes.
attempts_table = sa.Table(
    "callbridge_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    # The campaign of the request the call was for (1 for a request of one campaign).
    sa.Column("group_no", sa.Integer),
    sa.Column("kind", sa.String(8), nullable=False),  # create or report
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("message", sa.Text),
    sa.Column("campaign_id", sa.BigInteger),
    sa.Index("ix_callbridge_attempts_request", "request_id", "id"),
    sa.Index("ix_callbridge_attempts_finished", "finished_at"),
)

# The CRM's contact ids of each request (accepted phones and rejected ones): the console finds
# a request by an ``external_id``.
external_ids_table = sa.Table(
    "callbridge_external_ids",
    metadata,
    sa.Column("external_id", sa.String(128), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
)
