"""Creating the tables, and bringing a store made by an older callbridge up to date."""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.tables import SCHEMA_VERSION, metadata, requests_table, schema_meta

# Serialises the DDL of workers starting at once on one PostgreSQL database.
_DDL_LOCK = "SELECT pg_advisory_xact_lock(7407, 0)"


class Migrations(Database):
    def create_schema(self) -> None:
        """Create the tables if missing and record the schema version, refusing a newer one."""
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text(_DDL_LOCK))
            metadata.create_all(conn)
            for index in requests_table.indexes:  # added to tables made by an older callbridge
                index.create(conn, checkfirst=True)
            found = conn.execute(
                sa.select(schema_meta.c.value).where(schema_meta.c.key == "schema_version")
            ).scalar()
            if found is None:
                conn.execute(
                    schema_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
                )
            elif int(found) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {found}, newer than this callbridge "
                    f"({SCHEMA_VERSION}): upgrade callbridge"
                )
            elif int(found) < SCHEMA_VERSION:
                _migrate(conn, int(found))


def _migrate(conn: Connection, version: int) -> None:
    """Bring a store made by an older callbridge to ``SCHEMA_VERSION``, one step at a time."""
    if version < 2:
        # 2: the count of accepted phones is kept, so creating a campaign needs no second read.
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
    conn.execute(
        schema_meta.update()
        .where(schema_meta.c.key == "schema_version")
        .values(value=str(SCHEMA_VERSION))
    )
