"""A request's timeline: everything that happened to it, in order, read from the store.

Received; each platform call a step made and its answer (the attempts log); each event queued
and when the broker confirmed it; each operator action on it (the audit log). The phones are
masked and errors given in full, as the platform or intake worded them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from adapters.logs import redact
from adapters.store import CREATE, Attempt, AuditEntry, RequestRow, Store

RECEIVED, ATTEMPT, QUEUED, PUBLISHED, OPERATOR = (
    "received",
    "platform call",
    "event queued",
    "event published",
    "operator",
)


@dataclasses.dataclass(frozen=True)
class Moment:
    at: dt.datetime
    kind: str
    text: str
    # The full error, the event's id: what the page shows beside the line.
    detail: str | None = None
    event_id: str | None = None
    failed: bool = False


def timeline(store: Store, row: RequestRow) -> list[Moment]:
    """Every moment of ``row``'s life the store knows of, oldest first."""
    moments = [Moment(row.received_at, RECEIVED, "received from the CRM")]
    several = (row.campaign_count or 1) > 1
    moments += [_attempt(attempt, several) for attempt in store.attempts_of(row.request_id)]
    for event in store.events_of(row.request_id):
        text = f"{event['event_type']} → {event['queue']}"
        moments.append(Moment(event["created_at"], QUEUED, text, event_id=event["event_id"]))
        if event["published_at"] is not None:
            moments.append(
                Moment(event["published_at"], PUBLISHED, text, event_id=event["event_id"])
            )
    moments += [_audited(entry) for entry in store.audit_of(row.request_id)]
    return sorted(moments, key=lambda moment: moment.at)


def _attempt(attempt: Attempt, several: bool) -> Moment:
    what = "create campaign" if attempt.kind == CREATE else "fetch report"
    campaign = f" (campaign {attempt.group_no})" if several and attempt.group_no else ""
    status = f", HTTP {attempt.status}" if attempt.status is not None else ""
    made = f", campaign id {attempt.campaign_id}" if attempt.campaign_id else ""
    text = (
        f"{what}{campaign}, try {attempt.attempt}: {attempt.outcome}{status}{made} "
        f"in {attempt.seconds * 1000:.0f} ms"
    )
    failed = attempt.outcome not in {"created", "reported"}
    detail = redact(attempt.message) if attempt.message else None
    return Moment(attempt.finished_at, ATTEMPT, text, detail=detail, failed=failed)


def _audited(entry: AuditEntry) -> Moment:
    text = f"{entry.action} by {entry.actor} ({entry.role}) from {entry.address}: {entry.outcome}"
    return Moment(
        entry.at, OPERATOR, text, detail=entry.detail or None, failed=entry.outcome != "done"
    )
