"""Creating the tables, and bringing a store made by an older callbridge up to date.

New tables come from ``metadata.create_all``; a change to a table an older callbridge made is a
step here, numbered by the schema version it brings the store to, run in order in the same
transaction as the rest of the set-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.states import State
from adapters.store.tables import (
    PLATFORM_VIEW_COLUMNS,
    SCHEMA_VERSION,
    metadata,
    outbox_table,
    schema_meta,
)

# Serialises the DDL of workers starting at once on one PostgreSQL database.
_DDL_LOCK = "SELECT pg_advisory_xact_lock(7407, 0)"


class Migrations(Database):
    def create_schema(self) -> None:
        """Create the tables if missing and record the schema version, refusing a newer one."""
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text(_DDL_LOCK))
            found = _version(conn)
            if found is not None and found > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {found}, newer than this callbridge "
                    f"({SCHEMA_VERSION}): upgrade callbridge"
                )
            metadata.create_all(conn)
            if found is None:
                conn.execute(
                    schema_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
                )
                return
            for version in range(found + 1, SCHEMA_VERSION + 1):
                STEPS[version](conn)
            for table in metadata.sorted_tables:  # indexes added to tables an older one made
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            conn.execute(
                schema_meta.update()
                .where(schema_meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )


def _version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(schema_meta.name):
        return None
    found = conn.execute(
        sa.select(schema_meta.c.value).where(schema_meta.c.key == "schema_version")
    ).scalar()
    return None if found is None else int(found)


def _count_accepted_phones(conn: Connection) -> None:
    """2: the count of accepted phones is kept, so creating a campaign needs no second read."""
    conn.execute(sa.text("ALTER TABLE callbridge_requests ADD COLUMN phones_accepted INTEGER"))
    rows = conn.execute(
        sa.text("SELECT request_id, contacts FROM callbridge_requests WHERE contacts IS NOT NULL")
    ).all()
    for request_id, contacts in rows:
        conn.execute(
            sa.text("UPDATE callbridge_requests SET phones_accepted = :n WHERE request_id = :id"),
            {"n": len(json.loads(contacts)), "id": request_id},
        )


def _show_platform_view(conn: Connection) -> None:
    """3: each worker writes what it has seen of the platform (failures, the auth pause) with its
    heartbeat, so that ``health`` and ``status`` can tell."""
    for column in PLATFORM_VIEW_COLUMNS:
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE callbridge_workers ADD COLUMN {column.name} {kind}"))


def _outbox_set_aside(conn: Connection) -> None:
    """4: an event the broker refuses is retried later, and set aside when it refuses for good."""
    for name in ("refusals", "retry_at", "set_aside_at", "set_aside_reason"):
        column = sa.schema.CreateColumn(outbox_table.c[name]).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {outbox_table.name} ADD COLUMN {column}"))


# The columns of a request's one campaign that move to the campaign's own row in version 5.
_CAMPAIGN_COLUMNS = (
    "create_body",
    "contacts",
    "phones_accepted",
    "window_start",
    "window_end",
    "attempts",
    "report_attempts",
    "first_attempt_at",
    "next_attempt_at",
    "owner",
    "campaign_id",
    "report_due_at",
)
# What a campaign keeps of its request.
_OF_REQUEST = (
    "project_id",
    "scenario_id",
    "start_block_id",
    "correlation_id",
    "reply_to",
    "report_delay_minutes",
)
_REQUEST_STATE_OF = {
    State.RECEIVED: State.PENDING,
    State.RETRY: State.PENDING,
    State.SENDING: State.PENDING,
    State.REPORTING: State.CREATED,
    State.REPORTED: State.CREATED,
    State.REPORT_FAILED: State.CREATED,
}
_V2_INDEXES = (
    "ix_callbridge_requests_due",
    "ix_callbridge_requests_create_due",
    "ix_callbridge_requests_campaign",
)


def _campaign_per_request(conn: Connection) -> None:
    """5: a request may be planned as several campaigns, each with its own row, claim and
    settlement. A request an older callbridge stored becomes campaign 1 of 1, as it stood —
    in flight included: a ``sending`` one stays ``sending`` for orphan settlement to find."""
    for column, kind in (
        ("purpose", "VARCHAR(64)"),
        ("timezone", "VARCHAR(64)"),
        ("campaign_count", "INTEGER"),
    ):
        conn.execute(sa.text(f"ALTER TABLE callbridge_requests ADD COLUMN {column} {kind}"))
    copied = ", ".join(("state", "outcome", "updated_at", *_CAMPAIGN_COLUMNS, *_OF_REQUEST))
    conn.execute(
        sa.text(
            f"INSERT INTO callbridge_campaigns (request_id, group_no, campaign_count, {copied}) "
            f"SELECT request_id, 1, 1, {copied} FROM callbridge_requests "
            "WHERE create_body IS NOT NULL"
        )
    )
    cases = " ".join(f"WHEN '{old}' THEN '{new}'" for old, new in _REQUEST_STATE_OF.items())
    conn.execute(
        sa.text(
            f"UPDATE callbridge_requests SET state = CASE state {cases} ELSE state END, "
            "campaign_count = 1, purpose = 'scenario:' || CAST(scenario_id AS VARCHAR(20)) "
            "WHERE create_body IS NOT NULL"
        )
    )
    for index in _V2_INDEXES:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {index}"))
    for column in _CAMPAIGN_COLUMNS:
        conn.execute(sa.text(f"ALTER TABLE callbridge_requests DROP COLUMN {column}"))


# version -> the step that brings a store of the version before it there.
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _count_accepted_phones,
    3: _show_platform_view,
    4: _outbox_set_aside,
    5: _campaign_per_request,
}
