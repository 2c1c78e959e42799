"""The outbox: events waiting to be published, each marked once the broker confirmed it.

Every event to publish is a row here until its publisher confirm arrives, stored in the same
transaction as the state change it reports, so neither can exist without the other. An event
the broker refused waits until its ``retry_at``; one it refuses for good is set aside, kept with
the reason, and never read for publishing again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import Event, PendingEvent, naive, utcnow
from adapters.store.tables import outbox_table

_IDS = sa.bindparam("ids", expanding=True)
_NOW = sa.bindparam("now", type_=sa.DateTime)
_MARK_PUBLISHED = (
    outbox_table.update()
    .where(outbox_table.c.id.in_(_IDS))
    .values(published_at=sa.bindparam("published_at", type_=sa.DateTime))
)
_ROW_ID = sa.bindparam("row_id")
_MARK_REFUSED = (
    outbox_table.update()
    .where(outbox_table.c.id == _ROW_ID)
    .values(
        refusals=outbox_table.c.refusals + 1,
        retry_at=sa.bindparam("retry_at", type_=sa.DateTime),
    )
)
_SET_ASIDE = (
    outbox_table.update()
    .where(outbox_table.c.id == _ROW_ID)
    .values(
        set_aside_at=sa.bindparam("set_aside_at", type_=sa.DateTime),
        set_aside_reason=sa.bindparam("reason"),
    )
)
_READDRESS = (
    outbox_table.update()
    .where(outbox_table.c.id == _ROW_ID)
    .values(queue=sa.bindparam("queue"), properties=sa.bindparam("properties"))
)


@dataclasses.dataclass
class Settlement:
    """What became of a batch: filled in while it is published, written when the batch ends."""

    published: list[int] = dataclasses.field(default_factory=list)
    # id -> when to try again
    refused: dict[int, dt.datetime] = dataclasses.field(default_factory=dict)
    # id -> why it is set aside
    set_aside: dict[int, str] = dataclasses.field(default_factory=dict)
    # id -> (queue, properties) to publish it to instead
    readdressed: dict[int, tuple[str, Mapping[str, Any]]] = dataclasses.field(default_factory=dict)


class Outbox(Database):
    def add_event(self, conn: Connection, event: Event) -> bool:
        """Queue an event for the relay; False when that event_id is queued already."""
        values = {
            "event_id": event.event_id,
            "request_id": event.request_id,
            "event_type": event.event_type,
            "queue": event.queue,
            "body": event.body,
            "properties": encode_properties(event.properties),
            "created_at": naive(utcnow()),
        }
        return self.insert_ignoring_duplicate(conn, outbox_table, values, "event_id")

    @contextlib.contextmanager
    def pending_events(self, limit: int) -> Iterator[tuple[list[PendingEvent], Settlement]]:
        """A batch of events due for publishing, and the ``Settlement`` to fill in for them.

        On PostgreSQL the rows stay locked (SKIP LOCKED) while the block publishes them, so two
        relays never publish the same batch at once. SQLite serves one process with one relay:
        there the batch is read and settled in two short transactions, so that publishing does
        not hold SQLite's single write lock.
        """
        hold_lock = self.dialect == "postgresql"
        with self.transaction() if hold_lock else self.reading() as conn:
            rows = conn.execute(_pending_statement(limit), {"now": naive(utcnow())}).all()
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
                    refusals=row.refusals,
                )
                for row in rows
            ]
            settlement = Settlement()
            if hold_lock:
                yield batch, settlement
                self._settle(conn, settlement)
        if not hold_lock:
            yield batch, settlement
            with self.transaction() as conn:
                self._settle(conn, settlement)

    @staticmethod
    def _settle(conn: Connection, settlement: Settlement) -> None:
        now = naive(utcnow())
        if settlement.published:
            conn.execute(_MARK_PUBLISHED, {"ids": settlement.published, "published_at": now})
        for row_id, retry_at in settlement.refused.items():
            conn.execute(_MARK_REFUSED, {"row_id": row_id, "retry_at": naive(retry_at)})
        for row_id, reason in settlement.set_aside.items():
            conn.execute(_SET_ASIDE, {"row_id": row_id, "set_aside_at": now, "reason": reason})
        for row_id, (queue, properties) in settlement.readdressed.items():
            conn.execute(
                _READDRESS,
                {"row_id": row_id, "queue": queue, "properties": encode_properties(properties)},
            )


def encode_properties(properties: Mapping[str, Any]) -> str:
    """AMQP properties as stored: ASCII JSON, in which both stores hold any string AMQP can
    carry (a NUL, or a lone surrogate of a header, is written as an escape)."""
    return json.dumps(properties)


@functools.lru_cache(maxsize=4)
def _pending_statement(limit: int) -> sa.Select:
    """The oldest ``limit`` events due for publishing that no other relay holds (SKIP LOCKED);
    the parameter is ``now``, before which a refused event is not tried again."""
    table = outbox_table
    return (
        sa.select(table)
        .where(
            table.c.published_at.is_(None),
            table.c.set_aside_at.is_(None),
            sa.or_(table.c.retry_at.is_(None), table.c.retry_at <= _NOW),
        )
        .order_by(table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
