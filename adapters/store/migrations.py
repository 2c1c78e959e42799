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
from adapters.store.tables import (
    PLATFORM_VIEW_COLUMNS,
    SCHEMA_VERSION,
    metadata,
    outbox_table,
    requests_table,
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
        sa.select(requests_table.c.request_id, requests_table.c.contacts).where(
            requests_table.c.contacts.is_not(None)
        )
    ).all()
    for request_id, contacts in rows:
        conn.execute(
            requests_table.update()
            .where(requests_table.c.request_id == request_id)
            .values(phones_accepted=len(json.loads(contacts)))
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


# version -> the step that brings a store of the version before it there.
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _count_accepted_phones,
    3: _show_platform_view,
    4: _outbox_set_aside,
}
