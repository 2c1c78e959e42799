"""Step 4: publish the outbox, marking each event sent only after the broker confirmed it.

Runs in its own thread with its own connection (kombu connections are not shared between
threads). A crash between the confirm and the mark publishes the event again on the next run:
delivery is at-least-once, and the stable ``event_id`` / ``message_id`` lets the CRM drop the
copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kombu import Connection, Producer

from worker import metrics
from worker.broker import CONFIRM_TIMEOUT_SECONDS
from worker.logs import state_change
from worker.store import PendingEvent, Store

log = logging.getLogger("callbridge.relay")

BATCH_SIZE = 200
POLL_SECONDS = 1.0
PUBLISH_RETRY_POLICY = {
    "max_retries": 3,
    "interval_start": 0.5,
    "interval_step": 1.0,
    "interval_max": 3.0,
}


class Relay:
    def __init__(self, store: Store, connection: Connection, *, ready: threading.Event):
        self.store = store
        self.connection = connection
        self.ready = ready
        self._producer: Producer | None = None

    def publish_pending(self, *, limit: int = BATCH_SIZE) -> int:
        """Publish one batch of unsent events; the number published."""
        with self.store.pending_events(limit) as (batch, published):
            for pending in batch:
                self._publish(pending)
                published.append(pending.id)
        for pending in batch:
            metrics.count_event_published(pending.event.event_type)
            state_change(
                log,
                "event published",
                request_id=pending.event.request_id,
                event_type=pending.event.event_type,
                event_id=pending.event.event_id,
                queue=pending.event.queue,
            )
        return len(batch)

    def drain(self) -> int:
        """Publish until nothing is pending (used at shutdown and by the CLI)."""
        total = 0
        while count := self.publish_pending():
            total += count
        return total

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Publish whenever events are ready, until told to stop; then publish what is left."""
        while not should_stop():
            # Cleared before reading the outbox: a commit made while we publish sets it again,
            # so no wake-up is lost; polling covers events committed by other processes.
            self.ready.clear()
            try:
                if self.publish_pending() == BATCH_SIZE:
                    continue
            except self.connection.connection_errors + self.connection.channel_errors as exc:
                log.warning("relay lost the broker (%s); reconnecting", type(exc).__name__)
                self._reset()
            self.ready.wait(POLL_SECONDS)

    def _publish(self, pending: PendingEvent) -> None:
        event = pending.event
        properties = dict(event.properties)
        headers = properties.pop("headers", None) or {}
        content_type = properties.pop("content_type", None) or "application/octet-stream"
        content_encoding = properties.pop("content_encoding", None) or "binary"
        self._get_producer().publish(
            event.body,
            exchange="",
            routing_key=event.queue,
            delivery_mode=2,
            content_type=content_type,
            content_encoding=content_encoding,
            headers=headers,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            confirm_timeout=CONFIRM_TIMEOUT_SECONDS,
            timeout=CONFIRM_TIMEOUT_SECONDS,
            **properties,
        )

    def _get_producer(self) -> Producer:
        if self._producer is None:
            self.connection.ensure_connection(max_retries=3)
            self._producer = Producer(self.connection.default_channel)
        return self._producer

    def _reset(self) -> None:
        self._producer = None
        try:
            self.connection.close()
        except Exception:  # the connection is already broken; we only tidy up
            log.debug("closing a broken relay connection failed", exc_info=True)
        self.connection = self.connection.clone()
