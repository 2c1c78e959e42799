"""A request's life in the store: intake, claims, settlements, and reading it back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import (
    ROW_COLUMNS,
    NewRequest,
    RequestRow,
    naive,
    request_row,
    utcnow,
)
from adapters.store.states import IN_FLIGHT, PENDING_CREATE, State
from adapters.store.tables import requests_table
from schemas.json_codec import compact_text

# The statements of the hot path are built once, with parameters: SQLAlchemy spends more on
# constructing a statement and its cache key than the database spends running it. A
# state is matched with ``_state_in``, not ``in_()``: SQLAlchemy expands an IN list anew at
# every execution. The states are written into the SQL, so that either database can see that
# the claim's condition is the partial index's.
_NOW = sa.bindparam("now", type_=sa.DateTime)
_UPDATED_AT = sa.bindparam("updated_at", type_=sa.DateTime)


def _state_in(states: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.or_(*(requests_table.c.state == sa.literal_column(f"'{state}'") for state in states))


def _claim_statement(due: sa.ColumnElement, changes: Mapping[str, Any], columns) -> sa.Update:
    """Take the most overdue row that is ``due`` and no other worker holds (SKIP LOCKED);
    the parameters are ``owner``, ``now`` and ``updated_at``."""
    chosen = (
        sa.select(requests_table.c.request_id)
        .where(due)
        .order_by(requests_table.c.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        requests_table.update()
        .where(requests_table.c.request_id == chosen)
        .values(owner=sa.bindparam("owner"), updated_at=_UPDATED_AT, **changes)
        .returning(*columns)
    )


_CLAIM_CREATE = _claim_statement(
    sa.and_(_state_in(PENDING_CREATE), requests_table.c.next_attempt_at <= _NOW),
    {
        "state": State.SENDING,
        "attempts": requests_table.c.attempts + 1,
        "first_attempt_at": sa.func.coalesce(requests_table.c.first_attempt_at, _NOW),
    },
    [*ROW_COLUMNS, requests_table.c.create_body, requests_table.c.phones_rejected],
)
_CLAIM_REPORT = _claim_statement(
    sa.and_(requests_table.c.state == State.CREATED, requests_table.c.next_attempt_at <= _NOW),
    {"state": State.REPORTING, "report_attempts": requests_table.c.report_attempts + 1},
    [*ROW_COLUMNS, requests_table.c.contacts, requests_table.c.report_columns],
)
_DETAILS = sa.select(
    requests_table.c.contacts, requests_table.c.phones_rejected, requests_table.c.report_columns
).where(requests_table.c.request_id == sa.bindparam("request_id"))


@functools.lru_cache(maxsize=64)
def _settle_statement(
    columns: tuple[str, ...], from_states: tuple[str, ...], by_owner: bool, by_outcome: bool
) -> sa.Update:
    """Set ``columns`` (parameters ``new_<column>``) of the request ``settled_id`` while its state
    is one of ``from_states`` (and its owner ``held_by``, its outcome ``had_outcome``)."""
    table = requests_table
    conditions = [table.c.request_id == sa.bindparam("settled_id"), _state_in(from_states)]
    if by_owner:
        conditions.append(table.c.owner == sa.bindparam("held_by"))
    if by_outcome:
        conditions.append(table.c.outcome == sa.bindparam("had_outcome"))
    new = {column: sa.bindparam(f"new_{column}", type_=table.c[column].type) for column in columns}
    return table.update().where(*conditions).values(updated_at=_UPDATED_AT, **new)


class SettleConflict(RuntimeError):
    """The row was no longer ours to settle: another worker settled it as orphaned."""


class Requests(Database):
    def add_request(self, conn: Connection, new: NewRequest) -> bool:
        """Insert a valid request; False when its request_id is already known (a duplicate)."""
        now = naive(utcnow())
        # Field by field, not dataclasses.asdict: that deep-copies every contact of the request.
        values = {field.name: getattr(new, field.name) for field in dataclasses.fields(new)}
        values.update(
            state=State.RECEIVED,
            phones_accepted=len(new.contacts),
            contacts=compact_text(new.contacts),
            phones_rejected=json.dumps(new.phones_rejected, ensure_ascii=False),
            report_columns=None
            if new.report_columns is None
            else json.dumps(new.report_columns, ensure_ascii=False),
            window_start=naive(new.window_start),
            window_end=naive(new.window_end),
            next_attempt_at=now,
            received_at=now,
            updated_at=now,
        )
        if not self.insert_ignoring_duplicate(conn, requests_table, values, "request_id"):
            return False
        self.index_external_ids(
            conn,
            new.request_id,
            [external_id for _, external_id in new.contacts]
            + [rejected.get("external_id") for rejected in new.phones_rejected],
        )
        return True

    def add_rejected_request(
        self, conn: Connection, *, request_id: str, correlation_id: str | None, reply_to: str | None
    ) -> bool:
        """Record a rejection so a later delivery under the same request_id changes nothing."""
        now = naive(utcnow())
        values = {
            "request_id": request_id,
            "state": State.REJECTED,
            "outcome": State.REJECTED,
            "correlation_id": correlation_id,
            "reply_to": reply_to,
            "received_at": now,
            "updated_at": now,
        }
        return self.insert_ignoring_duplicate(conn, requests_table, values, "request_id")

    # -- claims --------------------------------------------------------------------------

    def _claim(self, statement: sa.Update, owner: int, now: dt.datetime):
        """Atomically take one due request: FOR UPDATE SKIP LOCKED lets workers share the queue."""
        with self.one_statement() as conn:
            return conn.execute(
                statement, {"owner": owner, "now": naive(now), "updated_at": naive(utcnow())}
            ).first()

    def claim_create(
        self, owner: int, now: dt.datetime
    ) -> tuple[RequestRow, bytes, list[dict]] | None:
        """Mark one due request ``sending`` (committed before the POST); return it with its
        body and its rejected phones, all that ``campaign.created`` needs beyond the answer."""
        row = self._claim(_CLAIM_CREATE, owner, now)
        if row is None:
            return None
        *fields, body, phones_rejected = row
        return request_row(fields), body, json.loads(phones_rejected or "[]")

    def claim_report(
        self, owner: int, now: dt.datetime
    ) -> tuple[RequestRow, list[tuple[str, str | None]], list[dict] | None] | None:
        """Mark one campaign whose report is due ``reporting``; return it with its contacts."""
        row = self._claim(_CLAIM_REPORT, owner, now)
        if row is None:
            return None
        *fields, contacts, columns = row
        return (
            request_row(fields),
            [tuple(pair) for pair in json.loads(contacts or "[]")],
            None if columns is None else json.loads(columns),
        )

    # -- settling ------------------------------------------------------------------------

    def settle(
        self,
        conn: Connection,
        request_id: str,
        *,
        from_states: Sequence[str],
        owner: int | None,
        changes: Mapping[str, Any],
        outcome: str | None = None,
    ) -> None:
        """Move a request on from a state we hold; SettleConflict when it is no longer ours.

        ``outcome``, when given, must match too: ``callbridge resolve`` may move a ``failed``
        request only while its outcome is ``unknown``.
        """
        statement = _settle_statement(
            tuple(changes), tuple(from_states), owner is not None, outcome is not None
        )
        parameters = {
            f"new_{key}": naive(value) if isinstance(value, dt.datetime) else value
            for key, value in changes.items()
        }
        parameters.update(
            settled_id=request_id,
            held_by=owner,
            had_outcome=outcome,
            updated_at=naive(utcnow()),
        )
        if conn.execute(statement, parameters).rowcount != 1:
            raise SettleConflict(request_id)

    def in_flight_of(self, conn: Connection, owner: int) -> list[RequestRow]:
        return [
            request_row(row)
            for row in conn.execute(
                sa.select(*ROW_COLUMNS)
                .where(requests_table.c.owner == owner, requests_table.c.state.in_(IN_FLIGHT))
                .with_for_update()
            )
        ]

    # -- reading -------------------------------------------------------------------------

    def get_request(self, request_id: str) -> RequestRow | None:
        return self._first_request(requests_table.c.request_id == request_id)

    def find_by_campaign(self, campaign_id: int) -> RequestRow | None:
        return self._first_request(requests_table.c.campaign_id == campaign_id)

    def _first_request(self, where: sa.ColumnElement[bool]) -> RequestRow | None:
        with self.reading() as conn:
            row = conn.execute(sa.select(*ROW_COLUMNS).where(where)).first()
        return None if row is None else request_row(row)

    def request_details(self, request_id: str) -> dict[str, Any]:
        """The bulky columns of a request, decoded: contacts, rejected phones, report columns."""
        with self.reading() as conn:
            row = conn.execute(_DETAILS, {"request_id": request_id}).one()
        return {
            "contacts": [tuple(pair) for pair in json.loads(row.contacts or "[]")],
            "phones_rejected": json.loads(row.phones_rejected or "[]"),
            "report_columns": None
            if row.report_columns is None
            else json.loads(row.report_columns),
        }
