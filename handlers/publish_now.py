"""Publish a request's events from an operator command's own process.

``callbridge resolve`` and ``callbridge report`` queue events in the outbox like the worker
does; publishing them right away, from the command itself, lets an operator's fix reach the
CRM even when no worker is running. A worker's relay may publish the same events at the same
time; that is the at-least-once delivery the contract already allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection

from kombu.exceptions import OperationalError

from adapters import broker
from adapters.broker import BrokerUnreachable
from adapters.config import Settings
from adapters.store import Store
from adapters.topology import declare
from handlers.relay import Relay

WAIT_SECONDS = 15.0


class PublishFailed(RuntimeError):
    """The broker could not be reached or refused an event; the events stay queued."""


def publish_events(
    settings: Settings, store: Store, request_id: str, *, event_types: Collection[str]
) -> list[str]:
    """Publish until the request's events of those types are out; the ids still unpublished
    after ``WAIT_SECONDS`` (another process's relay may hold them, waiting for confirms)."""
    connection = broker.connect(settings)
    errors = (
        BrokerUnreachable,
        OperationalError,
        TimeoutError,
        *connection.connection_errors,
        *connection.channel_errors,
    )
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        with connection:
            broker.ensure_connected(connection, settings)
            declare(connection.default_channel, settings)
            relay = Relay(store, connection, ready=threading.Event(), settings=settings)
            while (left := unpublished(store, request_id, event_types)) and (
                time.monotonic() < deadline
            ):
                if not relay.drain():
                    time.sleep(0.2)  # another relay holds them: wait for its confirms
    except errors as exc:
        reason = str(exc) if isinstance(exc, BrokerUnreachable) else type(exc).__name__
        raise PublishFailed(reason) from exc
    return left


def unpublished(store: Store, request_id: str, event_types: Collection[str]) -> list[str]:
    return [
        event["event_id"]
        for event in store.events_of(request_id)
        if event["event_type"] in event_types and event["published_at"] is None
    ]
