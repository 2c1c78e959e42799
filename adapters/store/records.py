"""What the store takes and gives: plain records, and times as the store keeps them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from adapters.store.tables import campaigns_table, requests_table


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
class NewCampaign:
    """One planned campaign of a request, as intake stores it."""

    group_no: int
    create_body: bytes
    contacts: Sequence[tuple[str, str | None]]
    window_start: dt.datetime
    window_end: dt.datetime
    platform_date: str
    platform_start: str
    platform_end: str


@dataclasses.dataclass(frozen=True)
class NewRequest:
    """What intake stores for a valid request: the request, and the campaigns it was planned as."""

    request_id: str
    project_id: int
    scenario_id: int
    start_block_id: int
    correlation_id: str | None
    reply_to: str | None
    purpose: str
    timezone: str
    phones_rejected: Sequence[Mapping[str, Any]]
    report_columns: Sequence[Mapping[str, Any]] | None
    report_delay_minutes: int
    campaigns: Sequence[NewCampaign]


@dataclasses.dataclass(frozen=True)
class RequestRow:
    """A request as the store has it (bulky columns are loaded only by the steps needing them)."""

    request_id: str
    state: str
    outcome: str | None
    project_id: int | None
    scenario_id: int | None
    start_block_id: int | None
    correlation_id: str | None
    reply_to: str | None
    purpose: str | None
    timezone: str | None
    campaign_count: int | None
    report_delay_minutes: int | None
    received_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class CampaignRow:
    """A campaign of a request as the store has it, with what every step of it needs of its
    request (the fields from ``project_id`` on, copied from the request at intake)."""

    id: int
    request_id: str
    group_no: int
    state: str
    outcome: str | None
    attempts: int
    report_attempts: int
    first_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    owner: int | None
    campaign_id: int | None
    report_due_at: dt.datetime | None
    phones_accepted: int | None
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    platform_date: str | None
    platform_start: str | None
    platform_end: str | None
    last_status: int | None
    last_error: str | None
    updated_at: dt.datetime
    project_id: int | None
    scenario_id: int | None
    start_block_id: int | None
    correlation_id: str | None
    reply_to: str | None
    report_delay_minutes: int | None
    campaign_count: int | None

    @property
    def several(self) -> bool:
        """Whether the request was planned as more than one campaign."""
        return (self.campaign_count or 1) > 1


REQUEST_COLUMNS = [requests_table.c[field.name] for field in dataclasses.fields(RequestRow)]
CAMPAIGN_COLUMNS = [campaigns_table.c[field.name] for field in dataclasses.fields(CampaignRow)]


def request_row(fields: Iterable[Any]) -> RequestRow:
    """A ``RequestRow`` from a result row holding ``REQUEST_COLUMNS`` in order."""
    return _record(RequestRow, fields)


def campaign_row(fields: Iterable[Any]) -> CampaignRow:
    """A ``CampaignRow`` from a result row holding ``CAMPAIGN_COLUMNS`` in order."""
    return _record(CampaignRow, fields)


def _record(kind, fields: Iterable[Any]):
    names = _FIELD_NAMES[kind]
    values = dict(zip(names, fields, strict=True))
    for name in _TIME_FIELDS[kind]:
        values[name] = aware(values[name])
    return kind(**values)


_FIELD_NAMES = {
    kind: tuple(field.name for field in dataclasses.fields(kind))
    for kind in (RequestRow, CampaignRow)
}
_TIME_FIELDS = {
    kind: tuple(name for name in names if name.endswith("_at") or name.startswith("window_"))
    for kind, names in _FIELD_NAMES.items()
}
