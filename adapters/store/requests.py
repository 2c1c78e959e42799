"""A request in the store: intake, its outcome once its campaigns are settled, reading it back.

What happens to each planned campaign of a request is ``campaigns``' part; a request holds what
is the request's (ids, where its events go, the phones left out) and, once every campaign of it
is settled, its outcome.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.campaigns import Campaigns
from adapters.store.records import (
    REQUEST_COLUMNS,
    NewRequest,
    RequestRow,
    naive,
    request_row,
    utcnow,
)
from adapters.store.states import State
from adapters.store.tables import requests_table

_REQUESTS = requests_table.c
_DETAILS = sa.select(_REQUESTS.phones_rejected, _REQUESTS.report_columns).where(
    _REQUESTS.request_id == sa.bindparam("request_id")
)


@functools.lru_cache(maxsize=16)
def _outcome_statement(from_states: tuple[str, ...]) -> sa.Update:
    """Set the state and outcome of the request ``settled_id`` while its state is one of
    ``from_states``; returns its rejected phones."""
    return (
        requests_table.update()
        .where(
            _REQUESTS.request_id == sa.bindparam("settled_id"),
            sa.or_(*(_REQUESTS.state == sa.literal_column(f"'{s}'") for s in from_states)),
        )
        .values(
            state=sa.bindparam("new_state", type_=sa.String),
            outcome=sa.bindparam("new_outcome", type_=sa.String),
            updated_at=sa.bindparam("updated_at", type_=sa.DateTime),
        )
        .returning(_REQUESTS.phones_rejected)
    )


class Requests(Campaigns):
    def add_request(self, conn: Connection, new: NewRequest) -> bool:
        """Insert a valid request with its planned campaigns; False when its request_id is
        already known (a duplicate: nothing is stored)."""
        now = naive(utcnow())
        values = {
            "request_id": new.request_id,
            "state": State.PENDING,
            "project_id": new.project_id,
            "scenario_id": new.scenario_id,
            "start_block_id": new.start_block_id,
            "correlation_id": new.correlation_id,
            "reply_to": new.reply_to,
            "purpose": new.purpose,
            "timezone": new.timezone,
            "campaign_count": len(new.campaigns),
            "phones_rejected": json.dumps(new.phones_rejected, ensure_ascii=False),
            "report_columns": None
            if new.report_columns is None
            else json.dumps(new.report_columns, ensure_ascii=False),
            "report_delay_minutes": new.report_delay_minutes,
            "received_at": now,
            "updated_at": now,
        }
        if not self.insert_ignoring_duplicate(conn, requests_table, values, "request_id"):
            return False
        self._add_campaigns(conn, new)
        self.index_external_ids(
            conn,
            new.request_id,
            [external_id for campaign in new.campaigns for _, external_id in campaign.contacts]
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

    def settle_request(
        self,
        conn: Connection,
        request_id: str,
        *,
        from_states: Sequence[str],
        state: str,
        outcome: str,
    ) -> list[dict] | None:
        """Give the request its state and outcome if it is in one of ``from_states``; its
        rejected phones then, else None (it was in another state: nothing changed)."""
        found = conn.execute(
            _outcome_statement(tuple(from_states)),
            {
                "settled_id": request_id,
                "new_state": state,
                "new_outcome": outcome,
                "updated_at": naive(utcnow()),
            },
        ).first()
        return None if found is None else json.loads(found.phones_rejected or "[]")

    def lock_request(self, conn: Connection, request_id: str) -> RequestRow:
        """The request, locked for the rest of ``conn``'s transaction (on PostgreSQL; SQLite's
        write transactions hold the whole database): two campaigns of it settled at once by two
        workers then decide its outcome one after the other."""
        row = conn.execute(
            sa.select(*REQUEST_COLUMNS).where(_REQUESTS.request_id == request_id).with_for_update()
        ).one()
        return request_row(row)

    # -- reading -------------------------------------------------------------------------

    def get_request(self, request_id: str) -> RequestRow | None:
        with self.reading() as conn:
            row = conn.execute(
                sa.select(*REQUEST_COLUMNS).where(_REQUESTS.request_id == request_id)
            ).first()
        return None if row is None else request_row(row)

    def request_details(self, request_id: str) -> dict[str, Any]:
        """The bulky columns of a request, decoded: rejected phones, report columns."""
        with self.reading() as conn:
            row = conn.execute(_DETAILS, {"request_id": request_id}).one()
        return {
            "phones_rejected": json.loads(row.phones_rejected or "[]"),
            "report_columns": None
            if row.report_columns is None
            else json.loads(row.report_columns),
        }
