"""Why a request and each of its campaigns are where they are, read from the store: what
``callbridge status`` (and later the web console) shows beside the states.

- a rejected request: the errors of its ``campaign.rejected`` event, one line per field;
- a failed request: the error and outcome of its ``campaign.failed`` event;
- a failed campaign of a request of several (whose request may still be created): the
  platform's answer stored with it; a ``report_failed`` campaign: the error of its
  ``campaign.report_failed`` event;
- a request with a campaign waiting to be created or reported: whether a worker's platform
  calls are paused because the platform refuses the API token (each worker shows its pause
  with its heartbeat).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.logs import redact
from adapters.store import PENDING_CREATE, CampaignRow, RequestRow, State, Store
from handlers.accept import error_lines
from schemas.events import CAMPAIGN_FAILED, CAMPAIGN_REJECTED, CAMPAIGN_REPORT_FAILED
from schemas.platform import format_utc_timestamp

# The event that says why a request ended in each state.
_ENDING_EVENT = {State.REJECTED: CAMPAIGN_REJECTED, State.FAILED: CAMPAIGN_FAILED}
# States in which a paused worker keeps a campaign waiting.
_WAITING = (*PENDING_CREATE, State.CREATED)
# At most this many of a request's report_failed events are read to find a campaign's.
_MAX_REPORT_FAILED_READ = 1000


def reasons(
    store: Store, row: RequestRow, campaigns: Sequence[CampaignRow], *, now: dt.datetime
) -> list[tuple[str, str]]:
    """``(label, text)`` lines saying why the request ``row`` (with its ``campaigns``) is in its
    state; none when nothing is amiss."""
    event = _stored_event(store, row.request_id, _ENDING_EVENT.get(row.state))
    found: list[tuple[str, str]] = []
    if event is not None and "errors" in event:
        errors = event["errors"] if isinstance(event["errors"], Mapping) else {}
        found += [("error", redact(line)) for line in error_lines(errors)]
    elif event is not None and isinstance(event.get("error"), Mapping):
        found.append(("error", describe_error(event["error"])))
    if any(campaign.state in _WAITING for campaign in campaigns):
        found += [("paused", line) for line in pauses(store.workers(), now=now)]
    return found


def campaign_reasons(store: Store, campaign: CampaignRow) -> list[tuple[str, str]]:
    """``(label, text)`` lines saying why one campaign is in its state, beyond what its
    request's ``reasons`` say (a request of one campaign: its ``campaign.failed``)."""
    if campaign.state == State.FAILED and campaign.several:
        stored = {"status": campaign.last_status, "message": campaign.last_error}
        return [("error", describe_error(stored))]
    if campaign.state == State.REPORT_FAILED:
        event = _report_failed_event(store, campaign)
        if event is not None and isinstance(event.get("error"), Mapping):
            return [("error", describe_error(event["error"]))]
    return []


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


def _report_failed_event(store: Store, campaign: CampaignRow) -> dict | None:
    """The ``campaign.report_failed`` event of this campaign (its request's only one, for a
    request of one campaign)."""
    limit = _MAX_REPORT_FAILED_READ if campaign.several else 1
    stored = store.outbox_of(campaign.request_id, event_type=CAMPAIGN_REPORT_FAILED, limit=limit)
    for row in stored:
        event = _decoded(row["body"])
        if event is not None and event.get("campaign_id") == campaign.campaign_id:
            return event
    return None


def _stored_event(store: Store, request_id: str, event_type: str | None) -> dict | None:
    if event_type is None:
        return None
    stored = store.outbox_of(request_id, event_type=event_type, limit=1)
    return _decoded(stored[0]["body"]) if stored else None


def _decoded(body: bytes) -> dict | None:
    try:
        event = json.loads(body)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
