"""Step 1, intake: turn one delivered message into a stored request or a recorded rejection.

Runs on the consumer thread; the caller acks the message only after this returns, i.e. after
the commit. Everything a message can be is settled here in one transaction: a new request, a
duplicate (nothing changes), or a rejection (its ``campaign.rejected`` event and the raw
message for the dead-letter queue, both in the outbox so neither is lost on a crash).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from marshmallow import ValidationError

from handlers.results import result
from schemas.events import campaign_rejected
from schemas.platform import create_campaign_body
from schemas.request import CallRequest, load_call_request, read_request_id
from worker import metrics
from worker.config import Settings
from worker.logs import state_change
from worker.store import Event, NewRequest, Store, utcnow

log = logging.getLogger("callbridge.accept")

JSON_CONTENT_TYPES = ("application/json", "text/json")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What intake needs of a broker message, free of any transport."""

    body: bytes
    content_type: str | None = None
    content_encoding: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    message_id: str | None = None
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    routing_key: str | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: Literal["accepted", "duplicate", "rejected"]
    request_id: str | None
    reason: str | None = None


class Malformed(ValueError):
    """The message is not a JSON object at all; ``str()`` is the reason for the headers."""


def decode_body(delivery: Delivery, *, max_bytes: int) -> object:
    """The decoded JSON of a message, or Malformed with a reason a CRM developer can act on."""
    if len(delivery.body) > max_bytes:
        raise Malformed(f"message is {len(delivery.body)} bytes, over the limit of {max_bytes}")
    content_type = (delivery.content_type or "").split(";")[0].strip().lower()
    if content_type and content_type not in JSON_CONTENT_TYPES:
        raise Malformed(f"content type {content_type!r} is not application/json")
    try:
        text = delivery.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise Malformed(f"body is not JSON: {exc.msg} at {where}") from None
    if not isinstance(data, dict):
        raise Malformed(f"body is a JSON {type(data).__name__}, not an object")
    return data


def accept(
    delivery: Delivery, *, settings: Settings, store: Store, now: dt.datetime | None = None
) -> Verdict:
    """Validate and store one message; the returned verdict says what became of it."""
    now = now or utcnow()
    try:
        data = decode_body(delivery, max_bytes=settings.max_message_bytes)
    except Malformed as exc:
        return _reject(delivery, None, {"_schema": [str(exc)]}, str(exc), settings, store, now)
    try:
        request = load_call_request(data, settings=settings, now=now)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        reason = "the request breaks the contract: " + ", ".join(_paths(errors))
        return _reject(delivery, read_request_id(data), errors, reason, settings, store, now)
    return _store_request(delivery, request, store)


def _store_request(delivery: Delivery, request: CallRequest, store: Store) -> Verdict:
    new = NewRequest(
        request_id=request.request_id,
        project_id=request.project_id,
        scenario_id=request.scenario_id,
        start_block_id=request.start_block_id,
        correlation_id=delivery.correlation_id,
        reply_to=delivery.reply_to,
        create_body=json.dumps(
            create_campaign_body(request), ensure_ascii=False, separators=(",", ":")
        ).encode(),
        contacts=[(contact.phone, contact.external_id) for contact in request.phones],
        phones_rejected=list(request.phones_rejected),
        report_columns=None if request.report_columns is None else list(request.report_columns),
        window_start=request.window_start,
        window_end=request.window_end,
        report_delay_minutes=request.report_delay_minutes,
    )
    with store.transaction() as conn:
        inserted = store.add_request(conn, new)
    if not inserted:
        state_change(log, "duplicate", request_id=request.request_id)
        return Verdict("duplicate", request.request_id)
    for reason, count in Counter(p["reason"] for p in request.phones_rejected).items():
        metrics.count_phone_rejected(reason, count)
    state_change(
        log,
        "accepted",
        request_id=request.request_id,
        phones_accepted=len(request.phones),
        phones_rejected=len(request.phones_rejected),
    )
    return Verdict("accepted", request.request_id)


def _reject(
    delivery: Delivery,
    request_id: str | None,
    errors: Mapping[str, Any],
    reason: str,
    settings: Settings,
    store: Store,
    now: dt.datetime,
) -> Verdict:
    """Record the rejection (once per request_id) and queue the raw message for dead-lettering."""
    event = campaign_rejected(
        request_id=request_id, errors=dict(errors), occurred_at=now, raw_body=delivery.body
    )
    with store.transaction() as conn:
        first = request_id is None or store.add_rejected_request(
            conn,
            request_id=request_id,
            correlation_id=delivery.correlation_id,
            reply_to=delivery.reply_to,
        )
        if first:
            store.add_event(
                conn,
                result(
                    settings,
                    event,
                    correlation_id=delivery.correlation_id,
                    reply_to=delivery.reply_to,
                ),
            )
        else:
            reason = f"request_id already settled; {reason}"
        store.add_event(conn, dead_letter(delivery, reason, errors, request_id, settings, now))
    metrics.count_request("rejected")
    state_change(log, "rejected", request_id=request_id, reason=reason)
    return Verdict("rejected", request_id, reason)


def dead_letter(
    delivery: Delivery,
    reason: str,
    errors: Mapping[str, Any],
    request_id: str | None,
    settings: Settings,
    now: dt.datetime,
) -> Event:
    """The original message, body untouched, bound for the dead-letter queue with the reason."""
    fingerprint = delivery.message_id or hashlib.sha256(delivery.body).hexdigest()[:32]
    headers = {
        **delivery.headers,
        "x-callbridge-reason": reason[:1000],
        "x-callbridge-errors": json.dumps(errors, ensure_ascii=False, default=str)[:4000],
        "x-callbridge-request-id": request_id,
        "x-callbridge-rejected-at": now.isoformat(),
        "x-original-queue": delivery.routing_key or settings.call_requests_queue,
    }
    properties = {
        "content_type": delivery.content_type,
        "content_encoding": delivery.content_encoding,
        "message_id": delivery.message_id,
        "correlation_id": delivery.correlation_id,
        "reply_to": delivery.reply_to,
        "headers": headers,
    }
    return Event(
        event_id=f"dead-letter:{fingerprint}",
        event_type="dead_letter",
        queue=settings.dead_letter_queue,
        body=delivery.body,
        properties={key: value for key, value in properties.items() if value is not None},
        request_id=request_id,
    )


def _paths(errors: Mapping[Any, Any], prefix: str = "") -> list[str]:
    """Field paths of a marshmallow error tree, e.g. ``campaign.schedule.attempts``."""
    paths: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        paths.extend(_paths(value, path) if isinstance(value, Mapping) else [path])
    return paths
