"""How a result event is addressed: which queue, with which AMQP properties.

The contract fixes the properties (``type``, ``message_id`` = ``event_id``, ``correlation_id``
= the request's correlation id or else its request_id) and the queue (the request's
``reply_to``, else ``CALL_RESULTS_QUEUE``); every step that settles a request goes through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.config import Settings
from adapters.store import Event
from schemas.events import encode_event

JSON_PROPERTIES = {"content_type": "application/json", "content_encoding": "utf-8"}


def encoded_result(
    settings: Settings,
    *,
    event_id: str,
    event_type: str,
    request_id: str | None,
    body: bytes,
    correlation_id: str | None,
    reply_to: str | None,
) -> Event:
    """An outbox row for an event already encoded (report parts are built as bytes)."""
    return Event(
        event_id=event_id,
        event_type=event_type,
        queue=reply_to or settings.call_results_queue,
        body=body,
        properties={
            **JSON_PROPERTIES,
            "type": event_type,
            "message_id": event_id,
            "correlation_id": correlation_id or request_id,
        },
        request_id=request_id,
    )


def result(
    settings: Settings,
    event: Mapping[str, Any],
    *,
    correlation_id: str | None,
    reply_to: str | None,
) -> Event:
    """An outbox row for an event built by ``schemas.events``."""
    return encoded_result(
        settings,
        event_id=event["event_id"],
        event_type=event["type"],
        request_id=event["request_id"],
        body=encode_event(event),
        correlation_id=correlation_id,
        reply_to=reply_to,
    )
