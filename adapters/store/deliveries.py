"""Messages the broker delivered again: how often, so that none can loop for ever.

The broker marks a message it hands out again (after a requeue, or after the worker that held
it died) as redelivered. Each such delivery is counted here in its own short transaction before
intake handles the message, so the count survives a handling that kills the process. The count
is forgotten in the transaction that settles the message. A store that is down counts nothing:
that is a fault of the store, and the message waits in the queue.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import aware, naive
from adapters.store.tables import deliveries_table

# Rows of messages that stopped coming back (taken off the queue by someone else) go after this.
FORGET_AFTER = dt.timedelta(days=1)

# The first delivery is not counted (it is not a redelivery): a row starts at the second.
_COUNT = sa.text(
    f"INSERT INTO {deliveries_table.name} "
    "(fingerprint, message_key, deliveries, first_at, last_at) "
    "VALUES (:fingerprint, :message_key, 2, :now, :now) "
    "ON CONFLICT (fingerprint) DO UPDATE SET "
    f"deliveries = {deliveries_table.name}.deliveries + 1, last_at = :now "
    "RETURNING deliveries"
).bindparams(sa.bindparam("now", type_=sa.DateTime))
_FORGET = deliveries_table.delete().where(
    deliveries_table.c.fingerprint.in_(sa.bindparam("fingerprints", expanding=True))
)
_FORGET_STALE = deliveries_table.delete().where(
    deliveries_table.c.last_at < sa.bindparam("before", type_=sa.DateTime)
)


class Deliveries(Database):
    def count_deliveries(self, messages: Mapping[str, str], now: dt.datetime) -> dict[str, int]:
        """One more delivery of each message (``fingerprint -> message_key``), committed at
        once; how many times each has been delivered now."""
        counts = {}
        with self.transaction() as conn:
            conn.execute(_FORGET_STALE, {"before": naive(now - FORGET_AFTER)})
            for fingerprint, message_key in messages.items():
                counts[fingerprint] = conn.execute(
                    _COUNT,
                    {"fingerprint": fingerprint, "message_key": message_key, "now": naive(now)},
                ).scalar_one()
        return counts

    def forget_deliveries(self, conn: Connection, fingerprints: Iterable[str]) -> None:
        """The messages are settled: their counts are of no more use."""
        if fingerprints := list(fingerprints):
            conn.execute(_FORGET, {"fingerprints": fingerprints})

    def most_delivered(self, since: dt.datetime) -> dict[str, Any] | None:
        """The unsettled message delivered most often, of those delivered again since ``since``:
        its ``message_key``, ``deliveries`` and ``last_at``; None when there is none."""
        table = deliveries_table
        with self.reading() as conn:
            row = conn.execute(
                sa.select(table.c.message_key, table.c.deliveries, table.c.last_at)
                .where(table.c.last_at >= naive(since))
                .order_by(table.c.deliveries.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return {**row._asdict(), "last_at": aware(row.last_at)}
