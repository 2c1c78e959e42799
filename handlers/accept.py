"""Step 1, intake: turn delivered messages into stored requests or recorded rejections.

Runs on the consumer thread; the caller acks the messages only after this returns, i.e. after
the commit. Everything a message can be is settled here in one transaction: a new request with
the campaigns it was planned as (``handlers.planner``), a duplicate (nothing changes), or a
rejection (its ``campaign.rejected`` event and the raw message for the dead-letter queue, both
in the outbox so neither is lost on a crash). A request whose every contact is left out by
planning is rejected too. Messages that arrive together are validated and planned one by one
and committed together, in one transaction.

Each message is isolated: whatever about the message itself makes handling fail — decoding,
validating, storing — rejects that message with the reason, and no other. Only a fault of the
store (``is_store_fault``) leaves a message without a verdict, for the caller to requeue later.
A message the broker delivers again is counted first, in its own transaction, and one delivered
more than ``MAX_DELIVERIES`` times is rejected as ``intake failed repeatedly`` without being
read: so not even a message that kills the worker can come back for ever.
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
from adapters.store import (
    Event,
    NewCampaign,
    NewRequest,
    Store,
    describe_store_fault,
    is_store_fault,
    utcnow,
)
from handlers.planner import Plan, PlanRules, plan_request
from handlers.results import result
from schemas.events import campaign_rejected
from schemas.identifiers import fit_short_string, is_storable
from schemas.json_codec import JsonRefused, strict_loads
from schemas.request import OUT_OF_RANGE, CallRequest, load_call_request, read_request_id

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger("callbridge.accept")

JSON_CONTENT_TYPES = ("application/json", "text/json")
REPEATED = "intake failed repeatedly"


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: Literal["accepted", "duplicate", "rejected"]
    request_id: str | None
    reason: str | None = None
    # A rejection's errors, in marshmallow's shape (what ``campaign.rejected`` carries).
    errors: Mapping[str, Any] | None = None


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
        data = strict_loads(text)
    except JsonRefused as exc:
        reason = f"body is {exc}" if str(exc).startswith("not JSON") else f"body: {exc}"
        raise Malformed(reason) from None
    if not isinstance(data, dict):
        raise Malformed(f"body is a JSON {type(data).__name__}, not an object")
    return data


def problems(verdict: Verdict) -> list[str]:
    """What intake refuses in a message, one line per error (``path: message``); none when it
    takes it."""
    return error_lines(verdict.errors) if verdict.errors else []


def verdict_on(delivery: Delivery, *, settings: Settings, now: dt.datetime) -> Verdict:
    """What intake would make of a message, storing nothing: ``rejected`` with the reason, or
    ``accepted`` as far as the contract goes (the store may know its request_id already). For
    those who must agree with intake: ``callbridge send`` and ``dead-letters --replay``."""
    judgement = _judge(delivery, None, settings, now)
    if isinstance(judgement, _Rejection):
        return Verdict("rejected", judgement.request_id, judgement.reason, judgement.errors)
    return Verdict("accepted", judgement.request_id)


def accept(
    delivery: Delivery, *, settings: Settings, store: Store, now: dt.datetime | None = None
) -> Verdict | None:
    """Validate and store one message; the verdict says what became of it (None: the store
    failed, and the message must be requeued)."""
    (verdict,) = accept_batch([delivery], settings=settings, store=store, now=now)
    return verdict


def accept_batch(
    deliveries: Sequence[Delivery],
    *,
    settings: Settings,
    store: Store,
    now: dt.datetime | None = None,
) -> list[Verdict | None]:
    """Validate several messages, then store them all in one transaction; a verdict each.

    One commit for a batch instead of one per message: the caller acks the whole batch once
    this returns. When that commit fails, each message is stored on its own, so that only a
    message at fault is rejected; then a message the store itself failed on has no verdict
    (None), and the caller requeues it. Raises (a fault of the store) when even the count of
    deliveries could not be committed: then nothing of the batch was stored.
    """
    now = now or utcnow()
    counts = _count_redeliveries(deliveries, store, now)
    judged = [
        (delivery, _judge(delivery, _count_of(delivery, counts), settings, now))
        for delivery in deliveries
    ]
    if len(judged) > 1:
        try:
            with store.transaction() as conn:
                verdicts = [
                    _record(conn, delivery, judgement, settings, store, now)
                    for delivery, judgement in judged
                ]
                store.forget_deliveries(conn, counts)
        except Exception as exc:
            log.warning(
                "storing %d messages together failed (%s); storing them one by one",
                len(judged),
                describe_store_fault(exc),
            )
        else:
            for (_, judgement), verdict in zip(judged, verdicts, strict=True):
                _announce(verdict, judgement)
            return verdicts
    return _accept_each(judged, settings, store, now)


@dataclasses.dataclass(frozen=True)
class _Rejection:
    request_id: str | None
    errors: Mapping[str, Any]
    reason: str


def _count_redeliveries(
    deliveries: Sequence[Delivery], store: Store, now: dt.datetime
) -> dict[str, int]:
    """Count each redelivered message once more (committed before anything else); its count,
    by fingerprint. A first delivery is not counted: nothing can have looped yet."""
    again = {_fingerprint(d): _message_key(d) for d in deliveries if d.redelivered}
    return store.count_deliveries(again, now) if again else {}


def _count_of(delivery: Delivery, counts: Mapping[str, int]) -> int | None:
    return counts.get(_fingerprint(delivery)) if delivery.redelivered else None


def _judge(
    delivery: Delivery, deliveries: int | None, settings: Settings, now: dt.datetime
) -> NewRequest | _Rejection:
    """What the message is: a request to store (built before the transaction, which then
    holds SQLite's write lock no longer than the writes), or why it is rejected."""
    if deliveries is not None and deliveries > settings.max_deliveries:
        reason = f"{REPEATED}: delivered {deliveries} times (limit {settings.max_deliveries})"
        return _Rejection(None, {"_schema": [reason]}, reason)
    data: object = None
    try:
        data = decode_body(delivery, max_bytes=settings.max_message_bytes)
        request = _load(data, delivery, settings, now)
        plan = plan_request(request, _plan_rules(settings), now)
        if not plan.campaigns:
            return _unplannable(request, plan)
        return _new_request(delivery, request, plan)
    except Malformed as exc:
        return _Rejection(None, {"_schema": [str(exc)]}, str(exc))
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        reason = "the request breaks the contract: " + ", ".join(_paths(errors))
        return _Rejection(read_request_id(data), errors, reason)
    except OverflowError:  # a window at the end of time, in some contact's zone
        return _Rejection(read_request_id(data), OUT_OF_RANGE, "the request's date is out of range")
    except Exception as exc:  # the message made intake itself fail: it is refused, not retried
        log.warning("intake could not read a message", exc_info=True)
        reason = f"intake could not read it ({type(exc).__name__})"
        return _Rejection(None, {"_schema": [reason]}, reason)


def _unplannable(request: CallRequest, plan: Plan) -> _Rejection:
    """A request of which no contact can be called: why, counted by reason."""
    counts = Counter(contact["reason"] for contact in plan.rejected)
    reason = "no contact can be called: " + ", ".join(f"{n} {why}" for why, n in counts.items())
    return _Rejection(request.request_id, {"phones": [reason]}, reason)


def _plan_rules(settings: Settings) -> PlanRules:
    return PlanRules(
        platform_timezone=settings.platform_timezone,
        calling_hours=settings.calling_hours,
        max_per_campaign=settings.max_phones_per_campaign,
    )


def _load(data: object, delivery: Delivery, settings: Settings, now: dt.datetime) -> CallRequest:
    properties = {
        "correlation_id": delivery.correlation_id,
        "reply_to": delivery.reply_to,
        "message_id": delivery.message_id,
    }
    return load_call_request(data, rules=settings.request_rules, now=now, properties=properties)


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


def _accept_each(
    judged: Sequence[tuple[Delivery, NewRequest | _Rejection]],
    settings: Settings,
    store: Store,
    now: dt.datetime,
) -> list[Verdict | None]:
    """Store each message in a transaction of its own; None for those the store failed on.
    Two failures in a row mean the store is down: the rest are not tried."""
    verdicts: list[Verdict | None] = []
    failures_in_a_row = 0
    for delivery, judgement in judged:
        if failures_in_a_row >= 2:
            verdicts.append(None)
            continue
        try:
            verdicts.append(_accept_alone(delivery, judgement, settings, store, now))
            failures_in_a_row = 0
        except Exception as exc:  # a fault of the store: the message goes back to the queue
            failures_in_a_row += 1
            verdicts.append(None)
            log.warning(
                "the store failed on a message (%s); it goes back to the queue",
                describe_store_fault(exc),
                exc_info=not is_store_fault(exc),
            )
    return verdicts


def _accept_alone(
    delivery: Delivery,
    judgement: NewRequest | _Rejection,
    settings: Settings,
    store: Store,
    now: dt.datetime,
) -> Verdict:
    """Store one message; if the store refuses it for a reason of the message, reject it
    instead: under its request_id, or under none if the store refuses that too (the request_id
    may be what it refuses). Raises a fault of the store."""
    counted = [_fingerprint(delivery)] if delivery.redelivered else []
    try:
        return _store_alone(delivery, judgement, counted, settings, store, now)
    except Exception as exc:
        if is_store_fault(exc):
            raise
        reason = f"the store refused it ({describe_store_fault(exc)})"
    named = _Rejection(judgement.request_id, {"_schema": [reason]}, reason)
    if named.request_id is not None:
        try:
            return _store_alone(delivery, named, counted, settings, store, now)
        except Exception as exc:
            if is_store_fault(exc):
                raise
    unnamed = dataclasses.replace(named, request_id=None)
    return _store_alone(delivery, unnamed, counted, settings, store, now)


def _store_alone(
    delivery: Delivery,
    judgement: NewRequest | _Rejection,
    counted: Sequence[str],
    settings: Settings,
    store: Store,
    now: dt.datetime,
) -> Verdict:
    with store.transaction() as conn:
        verdict = _record(conn, delivery, judgement, settings, store, now)
        store.forget_deliveries(conn, counted)
    _announce(verdict, judgement)
    return verdict


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
    """Record the rejection (once per request_id) and queue the raw message for dead-lettering.

    The rejection is addressed by the message's ``correlation_id`` and ``reply_to`` only when
    a store can hold them; otherwise it goes to the results queue, named by the request_id.
    """
    request_id, reason = rejection.request_id, rejection.reason
    correlation_id = _storable(delivery.correlation_id)
    reply_to = _storable(delivery.reply_to)
    first = request_id is None or store.add_rejected_request(
        conn, request_id=request_id, correlation_id=correlation_id, reply_to=reply_to
    )
    if first:
        event = campaign_rejected(
            request_id=request_id,
            errors=dict(rejection.errors),
            occurred_at=now,
            raw_body=delivery.body,
        )
        store.add_event(
            conn, result(settings, event, correlation_id=correlation_id, reply_to=reply_to)
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
    """The original message, body untouched, bound for the dead-letter queue with the reason.

    Its event id is made from the message_id (or the body's hash), fitted to 255 bytes. A
    header of the original that JSON cannot carry into the outbox (a timestamp, a decimal, a
    byte array) is left out of the copy, and its name listed in ``x-callbridge-dropped-headers``.
    """
    message_id = delivery.message_id if is_storable(delivery.message_id) else None
    fingerprint = message_id or hashlib.sha256(delivery.body).hexdigest()[:32]
    kept, dropped = _json_headers(delivery.headers)
    headers = {
        **kept,
        "x-callbridge-reason": reason[:1000],
        "x-callbridge-errors": json.dumps(errors, ensure_ascii=False, default=str)[:4000],
        "x-callbridge-request-id": request_id,
        "x-callbridge-rejected-at": now.isoformat(),
        "x-original-queue": delivery.routing_key or settings.call_requests_queue,
    }
    if dropped:
        headers["x-callbridge-dropped-headers"] = ", ".join(dropped)[:1000]
    properties = {
        "content_type": delivery.content_type,
        "content_encoding": delivery.content_encoding,
        "message_id": delivery.message_id,
        "correlation_id": delivery.correlation_id,
        "reply_to": delivery.reply_to,
        "headers": headers,
    }
    return Event(
        event_id=fit_short_string(f"dead-letter:{fingerprint}"),
        event_type="dead_letter",
        queue=settings.dead_letter_queue,
        body=delivery.body,
        properties={key: value for key, value in properties.items() if value is not None},
        request_id=request_id,
    )


def error_lines(errors: Mapping[Any, Any], prefix: str = "") -> list[str]:
    """A marshmallow error tree as lines, ``campaign.schedule.attempts: Must be between 1
    and 5.``; an error of the whole body (``_schema``) is its message alone."""
    lines: list[str] = []
    for key, value in errors.items():
        path = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            lines.extend(error_lines(value, path))
            continue
        for message in value if isinstance(value, list) else [value]:
            lines.append(f"{path}: {message}" if path else str(message))
    return lines


def _json_headers(headers: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str]]:
    """The headers JSON can carry as they are, and the names of those it cannot."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        try:
            json.dumps({name: value})
        except (TypeError, ValueError, RecursionError):
            dropped.append(name if isinstance(name, str) else repr(name))
        else:
            kept[name] = value
    return kept, dropped


def _fingerprint(delivery: Delivery) -> str:
    """Names one message across its deliveries: its message_id and its body."""
    digest = hashlib.sha256((delivery.message_id or "").encode("utf-8", "surrogatepass"))
    digest.update(b"\x00")
    digest.update(delivery.body)
    return digest.hexdigest()


def _message_key(delivery: Delivery) -> str:
    """How ``callbridge dead-letters`` names a message: its message_id, or its body's hash."""
    if is_storable(delivery.message_id):
        return fit_short_string(delivery.message_id)
    return f"sha256:{hashlib.sha256(delivery.body).hexdigest()[:16]}"


def _storable(value: str | None) -> str | None:
    return value if is_storable(value) else None


def _paths(errors: Mapping[Any, Any], prefix: str = "") -> list[str]:
    """Field paths of a marshmallow error tree, e.g. ``campaign.schedule.attempts``."""
    paths: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        paths.extend(_paths(value, path) if isinstance(value, Mapping) else [path])
    return paths
