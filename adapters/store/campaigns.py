"""A campaign's life in the store: claims, settlements, and reading it back.

Each planned campaign of a request has its own claim, its own ``sending`` mark and its own
settlement, so that no campaign is ever sent twice and a failure of one touches no other.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import (
    CAMPAIGN_COLUMNS,
    CampaignRow,
    NewRequest,
    campaign_row,
    naive,
    utcnow,
)
from adapters.store.states import IN_FLIGHT, PENDING_CREATE, State
from adapters.store.tables import campaigns_table, requests_table
from schemas.json_codec import compact_text

# The statements of the hot path are built once, with parameters: SQLAlchemy spends more on
# constructing a statement and its cache key than the database spends running it. A
# state is matched with ``_state_in``, not ``in_()``: SQLAlchemy expands an IN list anew at
# every execution. The states are written into the SQL, so that either database can see that
# the claim's condition is the partial index's.
_NOW = sa.bindparam("now", type_=sa.DateTime)
_UPDATED_AT = sa.bindparam("updated_at", type_=sa.DateTime)
_CAMPAIGNS = campaigns_table.c


def _state_in(states: Sequence[str], column: sa.Column = _CAMPAIGNS.state) -> sa.ColumnElement:
    return sa.or_(*(column == sa.literal_column(f"'{state}'") for state in states))


def _claim_statement(due: sa.ColumnElement, changes: Mapping[str, Any], columns) -> sa.Update:
    """Take the most overdue campaign that is ``due`` and no other worker holds (SKIP LOCKED),
    a request's campaigns in their planned order; the parameters are ``owner``, ``now`` and
    ``updated_at``."""
    chosen = (
        sa.select(_CAMPAIGNS.id)
        .where(due)
        .order_by(_CAMPAIGNS.next_attempt_at, _CAMPAIGNS.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        campaigns_table.update()
        .where(_CAMPAIGNS.id == chosen)
        .values(owner=sa.bindparam("owner"), updated_at=_UPDATED_AT, **changes)
        .returning(*columns)
    )


# A report waits for its request's outcome event: the CRM hears of a campaign before its report.
REPORT_MAY_START = (
    sa.select(requests_table.c.request_id)
    .where(
        requests_table.c.request_id == _CAMPAIGNS.request_id,
        requests_table.c.state != sa.literal_column(f"'{State.PENDING}'"),
    )
    .exists()
)

_CLAIM_CREATE = _claim_statement(
    sa.and_(_state_in(PENDING_CREATE), _CAMPAIGNS.next_attempt_at <= _NOW),
    {
        "state": State.SENDING,
        "attempts": _CAMPAIGNS.attempts + 1,
        "first_attempt_at": sa.func.coalesce(_CAMPAIGNS.first_attempt_at, _NOW),
    },
    [*CAMPAIGN_COLUMNS, _CAMPAIGNS.create_body],
)
_CLAIM_REPORT = _claim_statement(
    sa.and_(
        _CAMPAIGNS.state == State.CREATED, _CAMPAIGNS.next_attempt_at <= _NOW, REPORT_MAY_START
    ),
    {"state": State.REPORTING, "report_attempts": _CAMPAIGNS.report_attempts + 1},
    [
        *CAMPAIGN_COLUMNS,
        _CAMPAIGNS.contacts,
        # The request's columns, written out: SQLAlchemy leaves the table's name off the
        # columns of a RETURNING clause on SQLite, so the subquery could not tell them apart.
        sa.select(requests_table.c.report_columns)
        .where(
            requests_table.c.request_id == sa.literal_column(f"{campaigns_table.name}.request_id")
        )
        .scalar_subquery(),
    ],
)
_INSERT_COLUMNS = (
    "request_id",
    "group_no",
    "state",
    "create_body",
    "contacts",
    "phones_accepted",
    "window_start",
    "window_end",
    "platform_date",
    "platform_start",
    "platform_end",
    "next_attempt_at",
    "updated_at",
    "project_id",
    "scenario_id",
    "start_block_id",
    "correlation_id",
    "reply_to",
    "report_delay_minutes",
    "campaign_count",
)
_INSERT = sa.text(
    f"INSERT INTO {campaigns_table.name} ({', '.join(_INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(':' + column for column in _INSERT_COLUMNS)})"
).bindparams(*(sa.bindparam(name, type_=_CAMPAIGNS[name].type) for name in _INSERT_COLUMNS))


@functools.lru_cache(maxsize=64)
def _settle_statement(
    columns: tuple[str, ...], from_states: tuple[str, ...], by_owner: bool, by_outcome: bool
) -> sa.Update:
    """Set ``columns`` (parameters ``new_<column>``) of the campaign ``settled_id`` while its
    state is one of ``from_states`` (and its owner ``held_by``, its outcome ``had_outcome``)."""
    conditions = [_CAMPAIGNS.id == sa.bindparam("settled_id"), _state_in(from_states)]
    if by_owner:
        conditions.append(_CAMPAIGNS.owner == sa.bindparam("held_by"))
    if by_outcome:
        conditions.append(_CAMPAIGNS.outcome == sa.bindparam("had_outcome"))
    new = {
        column: sa.bindparam(f"new_{column}", type_=_CAMPAIGNS[column].type) for column in columns
    }
    return campaigns_table.update().where(*conditions).values(updated_at=_UPDATED_AT, **new)


class SettleConflict(RuntimeError):
    """The row was no longer ours to settle: another worker (or operator) settled it."""


class Campaigns(Database):
    def _add_campaigns(self, conn: Connection, new: NewRequest) -> None:
        """Store a new request's planned campaigns, each due now."""
        now = naive(utcnow())
        of_request = {
            "request_id": new.request_id,
            "project_id": new.project_id,
            "scenario_id": new.scenario_id,
            "start_block_id": new.start_block_id,
            "correlation_id": new.correlation_id,
            "reply_to": new.reply_to,
            "report_delay_minutes": new.report_delay_minutes,
            "campaign_count": len(new.campaigns),
        }
        conn.execute(
            _INSERT,
            [
                {
                    **of_request,
                    "group_no": campaign.group_no,
                    "state": State.RECEIVED,
                    "create_body": campaign.create_body,
                    "contacts": compact_text(campaign.contacts),
                    "phones_accepted": len(campaign.contacts),
                    "window_start": naive(campaign.window_start),
                    "window_end": naive(campaign.window_end),
                    "platform_date": campaign.platform_date,
                    "platform_start": campaign.platform_start,
                    "platform_end": campaign.platform_end,
                    "next_attempt_at": now,
                    "updated_at": now,
                }
                for campaign in new.campaigns
            ],
        )

    # -- claims --------------------------------------------------------------------------

    def _claim(self, statement: sa.Update, owner: int, now: dt.datetime):
        """Atomically take one due campaign: FOR UPDATE SKIP LOCKED lets workers share them."""
        with self.one_statement() as conn:
            return conn.execute(
                statement, {"owner": owner, "now": naive(now), "updated_at": naive(utcnow())}
            ).first()

    def claim_create(self, owner: int, now: dt.datetime) -> tuple[CampaignRow, bytes] | None:
        """Mark one due campaign ``sending`` (committed before the POST); return it with the
        body to POST."""
        row = self._claim(_CLAIM_CREATE, owner, now)
        if row is None:
            return None
        *fields, body = row
        return campaign_row(fields), body

    def claim_report(
        self, owner: int, now: dt.datetime
    ) -> tuple[CampaignRow, list[tuple[str, str | None]], list[dict] | None] | None:
        """Mark one campaign whose report is due ``reporting``; return it with its contacts
        and its request's report columns."""
        row = self._claim(_CLAIM_REPORT, owner, now)
        if row is None:
            return None
        *fields, contacts, columns = row
        return campaign_row(fields), _contacts(contacts), _json_or_none(columns)

    # -- settling ------------------------------------------------------------------------

    def settle_campaign(
        self,
        conn: Connection,
        row_id: int,
        *,
        from_states: Sequence[str],
        owner: int | None,
        changes: Mapping[str, Any],
        outcome: str | None = None,
    ) -> None:
        """Move a campaign on from a state we hold; SettleConflict when it is no longer ours.

        ``outcome``, when given, must match too: ``callbridge resolve`` may move a ``failed``
        campaign only while its outcome is ``unknown``.
        """
        statement = _settle_statement(
            tuple(changes), tuple(from_states), owner is not None, outcome is not None
        )
        parameters = {
            f"new_{key}": naive(value) if isinstance(value, dt.datetime) else value
            for key, value in changes.items()
        }
        parameters.update(
            settled_id=row_id, held_by=owner, had_outcome=outcome, updated_at=naive(utcnow())
        )
        if conn.execute(statement, parameters).rowcount != 1:
            raise SettleConflict(row_id)

    def in_flight_of(self, conn: Connection, owner: int) -> list[CampaignRow]:
        return [
            campaign_row(row)
            for row in conn.execute(
                sa.select(*CAMPAIGN_COLUMNS)
                .where(_CAMPAIGNS.owner == owner, _CAMPAIGNS.state.in_(IN_FLIGHT))
                .with_for_update(of=campaigns_table)
            )
        ]

    # -- reading -------------------------------------------------------------------------

    def campaigns_of(self, request_id: str, conn: Connection | None = None) -> list[CampaignRow]:
        """A request's campaigns in their planned order (inside ``conn``'s transaction if given)."""
        statement = (
            sa.select(*CAMPAIGN_COLUMNS)
            .where(_CAMPAIGNS.request_id == request_id)
            .order_by(_CAMPAIGNS.group_no)
        )
        if conn is not None:
            return [campaign_row(row) for row in conn.execute(statement)]
        with self.reading() as reader:
            return [campaign_row(row) for row in reader.execute(statement)]

    def contacts_of(
        self, row_ids: Sequence[int], conn: Connection | None = None
    ) -> dict[int, list[tuple[str, str | None]]]:
        """The contacts (E.164, external_id) of each campaign, by its row id."""
        if not row_ids:
            return {}
        statement = sa.select(_CAMPAIGNS.id, _CAMPAIGNS.contacts).where(
            _CAMPAIGNS.id.in_(list(row_ids))
        )
        if conn is not None:
            return {row_id: _contacts(text) for row_id, text in conn.execute(statement)}
        with self.reading() as reader:
            return {row_id: _contacts(text) for row_id, text in reader.execute(statement)}

    def find_by_campaign(self, campaign_id: int) -> CampaignRow | None:
        """The campaign the platform knows as ``campaign_id``, if callbridge created it."""
        with self.reading() as conn:
            row = conn.execute(
                sa.select(*CAMPAIGN_COLUMNS).where(_CAMPAIGNS.campaign_id == campaign_id)
            ).first()
        return None if row is None else campaign_row(row)


def _contacts(text: str | None) -> list[tuple[str, str | None]]:
    return [tuple(pair) for pair in json.loads(text or "[]")]


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
