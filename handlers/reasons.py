"""Why a request is where it is, read from the store: what ``callbridge status`` (and later the
web console) shows beside the state.

- rejected: the errors of its ``campaign.rejected`` event, one line per field;
- failed: the error and outcome of its ``campaign.failed`` event; ``report_failed``: the error
  of its ``campaign.report_failed`` event;
- waiting to be created or reported: whether a worker's platform calls are paused because the
  platform refuses the API token (each worker shows its pause with its heartbeat).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.logs import redact
from adapters.store import PENDING_CREATE, RequestRow, State, Store
from handlers.accept import error_lines
from schemas.events import CAMPAIGN_FAILED, CAMPAIGN_REJECTED, CAMPAIGN_REPORT_FAILED
from schemas.platform import format_utc_timestamp

# The event that says why a request ended in each state.
_ENDING_EVENT = {
    State.REJECTED: CAMPAIGN_REJECTED,
    State.FAILED: CAMPAIGN_FAILED,
    State.REPORT_FAILED: CAMPAIGN_REPORT_FAILED,
}
# States in which a paused worker keeps a request waiting.
_WAITING = (*PENDING_CREATE, State.CREATED)


def reasons(store: Store, row: RequestRow, *, now: dt.datetime) -> list[tuple[str, str]]:
    """``(label, text)`` lines saying why ``row`` is in its state; none when nothing is amiss."""
    event = _ending_event(store, row)
    found: list[tuple[str, str]] = []
    if event is not None and "errors" in event:
        errors = event["errors"] if isinstance(event["errors"], Mapping) else {}
        found += [("error", redact(line)) for line in error_lines(errors)]
    elif event is not None and isinstance(event.get("error"), Mapping):
        found.append(("error", describe_error(event["error"])))
    if row.state in _WAITING:
        found += [("paused", line) for line in pauses(store.workers(), now=now)]
    return found


def describe_error(error: Mapping[str, Any]) -> str:
    """``HTTP 422: phone_id 5 is not a number of project 1``, or the message alone."""
    status = error.get("status")
    message = redact(str(error.get("message") or "no message"))
    return f"HTTP {status}: {message}" if status is not None else message


def pauses(workers: Sequence[Mapping[str, Any]], *, now: dt.datetime) -> list[str]:
    """One line per worker (of ``store.workers()``) whose platform calls are paused on a
    refused token."""
    lines = []
    for worker in workers:
        if worker.get("paused_since") is None:
            continue
        until = worker.get("paused_until")
        next_try = f"; next try at {format_utc_timestamp(until)}" if until and until > now else ""
        lines.append(
            f"worker {worker['worker_key']} (host {worker['hostname']}): the platform refuses "
            f"the API token (HTTP {worker.get('pause_status')}) since "
            f"{format_utc_timestamp(worker['paused_since'])}{next_try}"
        )
    return lines


def _ending_event(store: Store, row: RequestRow) -> dict | None:
    event_type = _ENDING_EVENT.get(row.state)
    if event_type is None:
        return None
    stored = store.outbox_of(row.request_id, event_type=event_type, limit=1)
    if not stored:
        return None
    try:
        event = json.loads(stored[0]["body"])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
