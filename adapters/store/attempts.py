"""The attempts log: each platform call a step made, and the answer it got.

Written by the creation and report steps in the transaction that settles the answer, so an
attempt is in the log exactly when its outcome is in the store. It is what a request's
timeline shows of each try, and what the console's overview reads the platform's latency and
outcomes from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import aware, naive
from adapters.store.tables import attempts_table

CREATE, REPORT = "create", "report"
MESSAGE_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Attempt:
    request_id: str
    kind: str  # CREATE or REPORT
    attempt: int
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: str
    status: int | None = None
    message: str | None = None
    campaign_id: int | None = None
    group_no: int | None = None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


_FIELDS = [field.name for field in dataclasses.fields(Attempt)]
_INSERT = attempts_table.insert()


class Attempts(Database):
    def add_attempt(self, conn: Connection, attempt: Attempt) -> None:
        values = {name: getattr(attempt, name) for name in _FIELDS}
        values.update(
            started_at=naive(attempt.started_at),
            finished_at=naive(attempt.finished_at),
            message=None if attempt.message is None else attempt.message[:MESSAGE_LIMIT],
        )
        conn.execute(_INSERT, values)

    def attempts_of(self, request_id: str, *, limit: int = 500) -> list[Attempt]:
        """A request's attempts, in the order made."""
        where = attempts_table.c.request_id == request_id
        return self._attempts(where, attempts_table.c.id, limit)

    def attempts_since(self, since: dt.datetime, *, limit: int = 20_000) -> list[Attempt]:
        """The attempts finished since ``since``, the newest first (at most ``limit``)."""
        where = attempts_table.c.finished_at >= naive(since)
        return self._attempts(where, attempts_table.c.finished_at.desc(), limit)

    def _attempts(self, where: sa.ColumnElement[bool], order, limit: int) -> list[Attempt]:
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(*(attempts_table.c[name] for name in _FIELDS))
                .where(where)
                .order_by(order)
                .limit(limit)
            )
            return [
                Attempt(
                    **{
                        **row._asdict(),
                        "started_at": aware(row.started_at),
                        "finished_at": aware(row.finished_at),
                    }
                )
                for row in rows
            ]
