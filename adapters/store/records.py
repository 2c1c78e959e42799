"""What the store takes and gives: plain records, and times as the store keeps them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.store.tables import requests_table


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def naive(moment: dt.datetime | None) -> dt.datetime | None:
    """Store times as naive UTC: SQLite has no time zones, and one convention is simpler."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class Event:
    """A message to publish: a result event, or a dead-lettered original."""

    event_id: str
    event_type: str
    queue: str
    body: bytes
    properties: Mapping[str, Any]
    request_id: str | None = None


@dataclasses.dataclass(frozen=True)
class PlatformView:
    """What one worker has seen of the platform lately; its heartbeat writes it for others.

    ``failing_since``: the first call that got no usable answer (no connection, a timeout, a
    5xx, a 429) since the last one that did (``ok_at``). ``paused_*``: the platform refuses the
    token, and calls wait until ``paused_until``.
    """

    platform_ok_at: dt.datetime | None = None
    platform_failing_since: dt.datetime | None = None
    platform_error: str | None = None
    paused_since: dt.datetime | None = None
    paused_until: dt.datetime | None = None
    pause_status: int | None = None


@dataclasses.dataclass(frozen=True)
class PendingEvent:
    id: int
    event: Event
    # How often the broker refused it so far.
    refusals: int = 0


@dataclasses.dataclass(frozen=True)
class NewRequest:
    """What intake stores for a valid request."""

    request_id: str
    project_id: int
    scenario_id: int
    start_block_id: int
    correlation_id: str | None
    reply_to: str | None
    create_body: bytes
    contacts: Sequence[tuple[str, str | None]]
    phones_rejected: Sequence[Mapping[str, Any]]
    report_columns: Sequence[Mapping[str, Any]] | None
    window_start: dt.datetime
    window_end: dt.datetime
    report_delay_minutes: int


@dataclasses.dataclass(frozen=True)
class RequestRow:
    """A request as the store has it (bulky columns are loaded only by the steps needing them)."""

    request_id: str
    state: str
    project_id: int | None
    scenario_id: int | None
    start_block_id: int | None
    correlation_id: str | None
    reply_to: str | None
    attempts: int
    report_attempts: int
    first_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    campaign_id: int | None
    report_due_at: dt.datetime | None
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    report_delay_minutes: int | None
    outcome: str | None
    received_at: dt.datetime
    updated_at: dt.datetime
    owner: int | None
    phones_accepted: int | None


ROW_COLUMNS = [requests_table.c[field.name] for field in dataclasses.fields(RequestRow)]
_TIME_FIELDS = {f.name for f in dataclasses.fields(RequestRow) if f.name.endswith("_at")} | {
    "window_start",
    "window_end",
}


def request_row(fields: Iterable[Any]) -> RequestRow:
    """A ``RequestRow`` from a result row holding ``ROW_COLUMNS`` in order."""
    values = dict(zip((f.name for f in dataclasses.fields(RequestRow)), fields, strict=True))
    for name in _TIME_FIELDS:
        values[name] = aware(values[name])
    return RequestRow(**values)
