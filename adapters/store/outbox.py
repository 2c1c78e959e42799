"""The outbox: events waiting to be published, each marked once the broker confirmed it.

Every event to publish is a row here until its publisher confirm arrives, stored in the same
transaction as the state change it reports, so neither can exist without the other.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import Event, PendingEvent, naive, utcnow
from adapters.store.tables import outbox_table

_MARK_PUBLISHED = (
    outbox_table.update()
    .where(outbox_table.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(published_at=sa.bindparam("published_at", type_=sa.DateTime))
)


class Outbox(Database):
    def add_event(self, conn: Connection, event: Event) -> bool:
        """Queue an event for the relay; False when that event_id is queued already."""
        values = {
            "event_id": event.event_id,
            "request_id": event.request_id,
            "event_type": event.event_type,
            "queue": event.queue,
            "body": event.body,
            "properties": json.dumps(event.properties, ensure_ascii=False),
            "created_at": naive(utcnow()),
        }
        return self.insert_ignoring_duplicate(conn, outbox_table, values, "event_id")

    @contextlib.contextmanager
    def pending_events(self, limit: int) -> Iterator[tuple[list[PendingEvent], list[int]]]:
        """A batch of unpublished events, and a list to put the ids of those published.

        On PostgreSQL the rows stay locked (SKIP LOCKED) while the block publishes them, so two
        relays never publish the same batch at once. SQLite serves one process with one relay:
        there the batch is read and marked in two short transactions, so that publishing does
        not hold SQLite's single write lock.
        """
        hold_lock = self.dialect == "postgresql"
        with self.transaction() if hold_lock else self.reading() as conn:
            rows = conn.execute(_pending_statement(limit)).all()
            batch = [
                PendingEvent(
                    row.id,
                    Event(
                        event_id=row.event_id,
                        event_type=row.event_type,
                        queue=row.queue,
                        body=row.body,
                        properties=json.loads(row.properties),
                        request_id=row.request_id,
                    ),
                )
                for row in rows
            ]
            published: list[int] = []
            if hold_lock:
                yield batch, published
                self._mark_published(conn, published)
        if not hold_lock:
            yield batch, published
            with self.transaction() as conn:
                self._mark_published(conn, published)

    @staticmethod
    def _mark_published(conn: Connection, ids: Sequence[int]) -> None:
        if ids:
            conn.execute(_MARK_PUBLISHED, {"ids": list(ids), "published_at": naive(utcnow())})


@functools.lru_cache(maxsize=4)
def _pending_statement(limit: int) -> sa.Select:
    """The oldest ``limit`` unpublished events that no other relay holds (SKIP LOCKED)."""
    return (
        sa.select(outbox_table)
        .where(outbox_table.c.published_at.is_(None))
        .order_by(outbox_table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
