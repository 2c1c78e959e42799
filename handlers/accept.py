"""Step 1, intake: turn delivered messages into stored requests or recorded rejections.

Runs on the consumer thread; the caller acks the messages only after this returns, i.e. after
the commit. Everything a message can be is settled here in one transaction: a new request with
the campaigns it was planned as (``handlers.planner``), a duplicate (nothing changes), or a
rejection (its ``campaign.rejected`` event and the raw message for the dead-letter queue, both
in the outbox so neither is lost on a crash). A request whose every contact is left out by
planning is rejected too. Messages that arrive together are validated and planned one by one
and committed together, in one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from marshmallow import ValidationError

from adapters import metrics
from adapters.broker import Delivery
from adapters.config import Settings
from adapters.logs import state_change
from adapters.store import Event, NewCampaign, NewRequest, Store, utcnow
from handlers.planner import Plan, PlanRules, plan_request
from handlers.results import result
from schemas.events import campaign_rejected
from schemas.request import OUT_OF_RANGE, CallRequest, load_call_request, read_request_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("callbridge.accept")

JSON_CONTENT_TYPES = ("application/json", "text/json")


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
    (verdict,) = accept_batch([delivery], settings=settings, store=store, now=now)
    return verdict


def accept_batch(
    deliveries: Sequence[Delivery],
    *,
    settings: Settings,
    store: Store,
    now: dt.datetime | None = None,
) -> list[Verdict]:
    """Validate several messages, then store them all in one transaction; a verdict each.

    One commit for a batch instead of one per message: the caller acks the whole batch once
    this returns. If it raises, nothing of the batch was stored.
    """
    now = now or utcnow()
    judged = [(delivery, _judge(delivery, settings, now)) for delivery in deliveries]
    with store.transaction() as conn:
        verdicts = [
            _record(conn, delivery, judgement, settings, store, now)
            for delivery, judgement in judged
        ]
    for (_, judgement), verdict in zip(judged, verdicts, strict=True):
        _announce(verdict, judgement)
    return verdicts


@dataclasses.dataclass(frozen=True)
class _Rejection:
    request_id: str | None
    errors: Mapping[str, Any]
    reason: str


def _judge(delivery: Delivery, settings: Settings, now: dt.datetime) -> NewRequest | _Rejection:
    """What the message is: a request to store (built before the transaction, which then
    holds SQLite's write lock no longer than the writes), or why it is rejected."""
    try:
        data = decode_body(delivery, max_bytes=settings.max_message_bytes)
    except Malformed as exc:
        return _Rejection(None, {"_schema": [str(exc)]}, str(exc))
    try:
        request = load_call_request(data, rules=settings.request_rules, now=now)
        plan = plan_request(request, _plan_rules(settings), now)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        reason = "the request breaks the contract: " + ", ".join(_paths(errors))
        return _Rejection(read_request_id(data), errors, reason)
    except OverflowError:  # a window at the end of time, in some contact's zone
        return _Rejection(read_request_id(data), OUT_OF_RANGE, "the request's date is out of range")
    if not plan.campaigns:
        counts = Counter(contact["reason"] for contact in plan.rejected)
        reason = "no contact can be called: " + ", ".join(f"{n} {why}" for why, n in counts.items())
        return _Rejection(request.request_id, {"phones": [reason]}, reason)
    return _new_request(delivery, request, plan)


def _plan_rules(settings: Settings) -> PlanRules:
    return PlanRules(
        platform_timezone=settings.platform_timezone,
        calling_hours=settings.calling_hours,
        max_per_campaign=settings.max_phones_per_campaign,
    )


def _record(
    conn: Connection,
    delivery: Delivery,
    judgement: NewRequest | _Rejection,
    settings: Settings,
    store: Store,
    now: dt.datetime,
) -> Verdict:
    if isinstance(judgement, _Rejection):
        return _reject(conn, delivery, judgement, settings, store, now)
    inserted = store.add_request(conn, judgement)
    return Verdict("accepted" if inserted else "duplicate", judgement.request_id)


def _new_request(delivery: Delivery, request: CallRequest, plan: Plan) -> NewRequest:
    return NewRequest(
        request_id=request.request_id,
        project_id=request.project_id,
        scenario_id=request.scenario_id,
        start_block_id=request.start_block_id,
        correlation_id=delivery.correlation_id,
        reply_to=delivery.reply_to,
        purpose=request.purpose,
        timezone=request.timezone,
        phones_rejected=[*request.phones_rejected, *plan.rejected],
        report_columns=None if request.report_columns is None else list(request.report_columns),
        report_delay_minutes=request.report_delay_minutes,
        campaigns=[
            NewCampaign(
                group_no=group_no,
                create_body=planned.body(request),
                contacts=[(contact.phone, contact.external_id) for contact in planned.contacts],
                window_start=planned.window.starts_at,
                window_end=planned.window.ends_at,
                platform_date=planned.window.date.isoformat(),
                platform_start=planned.window.start_time.strftime("%H:%M"),
                platform_end=planned.window.end_time.strftime("%H:%M"),
            )
            for group_no, planned in enumerate(plan.campaigns, start=1)
        ],
    )


def _reject(
    conn: Connection,
    delivery: Delivery,
    rejection: _Rejection,
    settings: Settings,
    store: Store,
    now: dt.datetime,
) -> Verdict:
    """Record the rejection (once per request_id) and queue the raw message for dead-lettering."""
    request_id, reason = rejection.request_id, rejection.reason
    first = request_id is None or store.add_rejected_request(
        conn,
        request_id=request_id,
        correlation_id=delivery.correlation_id,
        reply_to=delivery.reply_to,
    )
    if first:
        event = campaign_rejected(
            request_id=request_id,
            errors=dict(rejection.errors),
            occurred_at=now,
            raw_body=delivery.body,
        )
        store.add_event(
            conn,
            result(
                settings, event, correlation_id=delivery.correlation_id, reply_to=delivery.reply_to
            ),
        )
    else:
        reason = f"request_id already settled; {reason}"
    store.add_event(
        conn, dead_letter(delivery, reason, rejection.errors, request_id, settings, now)
    )
    return Verdict("rejected", request_id, reason)


def _announce(verdict: Verdict, judgement: NewRequest | _Rejection) -> None:
    """Log and count what became of a message, once its batch is committed."""
    if verdict.outcome == "rejected":
        metrics.count_request("rejected")
        state_change(log, "rejected", request_id=verdict.request_id, reason=verdict.reason)
    elif verdict.outcome == "duplicate":
        state_change(log, "duplicate", request_id=verdict.request_id)
    else:
        rejected = judgement.phones_rejected
        for reason, count in Counter(phone["reason"] for phone in rejected).items():
            metrics.count_phone_rejected(reason, count)
        state_change(
            log,
            "accepted",
            request_id=verdict.request_id,
            phones_accepted=sum(len(campaign.contacts) for campaign in judgement.campaigns),
            phones_rejected=len(rejected),
            campaigns=len(judgement.campaigns),
        )


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
