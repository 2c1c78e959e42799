"""The audit log: every operator action, from the console or the CLI, with what came of it.

Rows are only added, never changed. An entry is written once the action has ended, in a
transaction of its own, so that a refusal and a failure are kept as well as a success.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from adapters.store.engine import Database
from adapters.store.records import aware, naive, utcnow
from adapters.store.tables import audit_table

# The longest detail kept: a replay of every dead letter names each one.
DETAIL_LIMIT = 16_000
CUT = "\n… (cut)"


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    actor: str
    role: str
    address: str
    action: str
    outcome: str  # done, refused or failed
    detail: str
    request_id: str | None = None
    subject: str | None = None
    at: dt.datetime | None = None  # set when stored
    id: int | None = None  # set when stored


_FIELDS = [field.name for field in dataclasses.fields(AuditEntry)]


class Audit(Database):
    def add_audit(self, entry: AuditEntry) -> int:
        """Store the entry, its detail cut to ``DETAIL_LIMIT`` characters; its id."""
        detail = entry.detail
        if len(detail) > DETAIL_LIMIT:
            detail = detail[: DETAIL_LIMIT - len(CUT)] + CUT
        values = {
            name: getattr(entry, name) for name in _FIELDS if name not in {"id", "at", "detail"}
        }
        values.update(at=naive(utcnow()), detail=detail)
        for name, limit in (("actor", 64), ("address", 255), ("subject", 255)):
            if values[name] is not None:
                values[name] = values[name][:limit]
        with self.transaction() as conn:
            return conn.execute(
                audit_table.insert().values(**values).returning(audit_table.c.id)
            ).scalar_one()

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        found = self._audit(audit_table.c.id == entry_id, limit=1)
        return found[0] if found else None

    def audit_of(self, request_id: str, *, limit: int = 200) -> list[AuditEntry]:
        """The entries about a request, oldest first."""
        where = audit_table.c.request_id == request_id
        return self._audit(where, limit=limit, newest_first=False)

    def audit_before(self, before: int | None, *, limit: int) -> list[AuditEntry]:
        """The newest ``limit`` entries older than id ``before`` (all when None), newest first."""
        where = sa.true() if before is None else audit_table.c.id < before
        return self._audit(where, limit=limit)

    def _audit(
        self, where: sa.ColumnElement[bool], *, limit: int, newest_first: bool = True
    ) -> list[AuditEntry]:
        order = audit_table.c.id.desc() if newest_first else audit_table.c.id
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(*(audit_table.c[name] for name in _FIELDS))
                .where(where)
                .order_by(order)
                .limit(limit)
            )
            return [AuditEntry(**{**row._asdict(), "at": aware(row.at)}) for row in rows]
