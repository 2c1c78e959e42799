"""Read models of the operator's console: requests by state over a time window, and lists that
page by key (never by offset), so that the thousandth page costs what the first does.

A list of requests is ordered newest first by ``(received_at, request_id)``, the key of
``ix_callbridge_requests_received``; each filter has an index that leads with it and ends with
that key, so the database walks one index from the cursor and stops after a page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import CAMPAIGN_COLUMNS, CampaignRow, aware, campaign_row, naive
from adapters.store.tables import (
    campaigns_table,
    external_ids_table,
    outbox_table,
    requests_table,
)

_INDEX_EXTERNAL_ID = external_ids_table.insert()
_SINCE = sa.bindparam("since", type_=sa.DateTime)
_REQUESTS = requests_table.c
_BY_STATE_SINCE = (
    sa.select(_REQUESTS.state, sa.func.count())
    .where(_REQUESTS.received_at >= _SINCE)
    .group_by(_REQUESTS.state)
)
_OUTBOX_WAITING = sa.select(sa.func.count(), sa.func.min(outbox_table.c.created_at)).where(
    outbox_table.c.published_at.is_(None)
)
_LISTED = (
    _REQUESTS.request_id,
    _REQUESTS.state,
    _REQUESTS.outcome,
    _REQUESTS.project_id,
    _REQUESTS.purpose,
    _REQUESTS.campaign_count,
    _REQUESTS.received_at,
    _REQUESTS.updated_at,
)


@dataclasses.dataclass(frozen=True)
class RequestFilter:
    """What a list of requests is narrowed to; None is no narrowing."""

    state: str | None = None
    project_id: int | None = None
    purpose: str | None = None
    received_from: dt.datetime | None = None
    received_to: dt.datetime | None = None
    # The requests a search found (by request_id, external_id or campaign id).
    request_ids: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Key:
    """A request's place in a list: a page starts after (or ends before) one."""

    received_at: dt.datetime
    request_id: str


@dataclasses.dataclass(frozen=True)
class ListedRequest:
    request_id: str
    state: str
    outcome: str | None
    project_id: int | None
    purpose: str | None
    campaign_count: int | None
    received_at: dt.datetime
    updated_at: dt.datetime

    @property
    def key(self) -> Key:
        return Key(self.received_at, self.request_id)


class Browse(Database):
    def requests_by_state_since(self, since: dt.datetime) -> dict[str, int]:
        """How many requests received since ``since`` are in each state."""
        with self.reading() as conn:
            return dict(conn.execute(_BY_STATE_SINCE, {"since": naive(since)}).all())

    def list_requests(
        self,
        narrowed: RequestFilter,
        *,
        after: Key | None = None,
        before: Key | None = None,
        limit: int,
    ) -> list[ListedRequest]:
        """Up to ``limit`` requests, newest first: those older than ``after``, or the newest
        ``limit`` of those newer than ``before``, or the newest of all."""
        key = sa.tuple_(_REQUESTS.received_at, _REQUESTS.request_id)
        where = _conditions(narrowed)
        if after is not None:
            where.append(key < sa.tuple_(naive(after.received_at), after.request_id))
        order = [_REQUESTS.received_at.desc(), _REQUESTS.request_id.desc()]
        if before is not None:
            where.append(key > sa.tuple_(naive(before.received_at), before.request_id))
            order = [_REQUESTS.received_at, _REQUESTS.request_id]
        with self.reading() as conn:
            rows = conn.execute(sa.select(*_LISTED).where(*where).order_by(*order).limit(limit))
            found = [_listed(row) for row in rows]
        return found[::-1] if before is not None else found

    def index_external_ids(
        self, conn: Connection, request_id: str, external_ids: Iterable[str | None]
    ) -> None:
        """Note the contact ids a request named, so that a search finds it by any of them."""
        rows = [
            {"external_id": external_id, "request_id": request_id}
            for external_id in dict.fromkeys(filter(None, external_ids))
        ]
        if rows:
            conn.execute(_INDEX_EXTERNAL_ID, rows)

    def requests_with_external_id(self, external_id: str, *, limit: int) -> list[str]:
        """The requests that named a contact ``external_id`` (accepted or rejected)."""
        table = external_ids_table.c
        with self.reading() as conn:
            return list(
                conn.execute(
                    sa.select(table.request_id)
                    .where(table.external_id == external_id)
                    .order_by(table.request_id)
                    .limit(limit)
                ).scalars()
            )

    def outbox_waiting(self) -> tuple[int, dt.datetime | None]:
        """How many events wait to be published, and since when the oldest."""
        with self.reading() as conn:
            count, oldest = conn.execute(_OUTBOX_WAITING).one()
        return count, aware(oldest)

    def set_aside(self, *, limit: int) -> list[dict]:
        """Events the relay set aside (never to be published until an operator puts them
        back), the oldest first."""
        table = outbox_table.c
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(
                    table.event_id,
                    table.request_id,
                    table.event_type,
                    table.queue,
                    table.created_at,
                    table.set_aside_at,
                    table.set_aside_reason,
                )
                .where(table.set_aside_at.is_not(None))
                .order_by(table.id)
                .limit(limit)
            )
            return [
                {
                    **row._asdict(),
                    "created_at": aware(row.created_at),
                    "set_aside_at": aware(row.set_aside_at),
                }
                for row in rows
            ]

    def outbox_event(self, event_id: str) -> dict | None:
        """One event of the outbox, its body included."""
        with self.reading() as conn:
            row = conn.execute(
                sa.select(
                    outbox_table.c.event_id,
                    outbox_table.c.request_id,
                    outbox_table.c.event_type,
                    outbox_table.c.queue,
                    outbox_table.c.body,
                    outbox_table.c.created_at,
                    outbox_table.c.published_at,
                ).where(outbox_table.c.event_id == event_id)
            ).first()
        if row is None:
            return None
        return {
            **row._asdict(),
            "created_at": aware(row.created_at),
            "published_at": aware(row.published_at),
        }

    def campaigns_waiting(
        self, state: str, *, outcome: str | None, limit: int
    ) -> list[CampaignRow]:
        """Campaigns in ``state`` (with ``outcome``, when given) that an operator must settle,
        the longest waiting first."""
        campaigns = campaigns_table.c
        where = [campaigns.state == state]
        if outcome is not None:
            where.append(campaigns.outcome == outcome)
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(*CAMPAIGN_COLUMNS)
                .where(*where)
                .order_by(campaigns.updated_at, campaigns.id)
                .limit(limit)
            )
            return [campaign_row(row) for row in rows]


def _conditions(narrowed: RequestFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if narrowed.state is not None:
        where.append(_REQUESTS.state == narrowed.state)
    if narrowed.project_id is not None:
        where.append(_REQUESTS.project_id == narrowed.project_id)
    if narrowed.purpose is not None:
        where.append(_REQUESTS.purpose == narrowed.purpose)
    if narrowed.received_from is not None:
        where.append(_REQUESTS.received_at >= naive(narrowed.received_from))
    if narrowed.received_to is not None:
        where.append(_REQUESTS.received_at < naive(narrowed.received_to))
    if narrowed.request_ids is not None:
        where.append(_REQUESTS.request_id.in_(narrowed.request_ids))
    return where


def _listed(row: sa.Row) -> ListedRequest:
    return ListedRequest(
        **{
            **row._asdict(),
            "received_at": aware(row.received_at),
            "updated_at": aware(row.updated_at),
        }
    )
