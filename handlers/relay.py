"""Step 4: publish the outbox, marking each event sent only after the broker confirmed it.

Runs in its own thread with its own connection (kombu connections are not shared between
threads). Confirms are waited for per batch, not per message: every event of a batch is
published, then the relay waits until the broker has confirmed them all, then marks them all
sent; waiting per message would cost a broker round trip per event. An event the broker
refuses (a nack) stays queued and goes again with a later batch, without holding back the rest
of its batch. A timeout or a lost connection marks none of the batch, and a crash between the
confirms and the mark marks none either: those events are published again. Delivery is
at-least-once, and the stable ``event_id`` / ``message_id`` lets the CRM drop the copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kombu import Connection

from adapters import metrics
from adapters.broker import CONFIRM_TIMEOUT_SECONDS
from adapters.logs import state_change
from adapters.store import PendingEvent, Store

log = logging.getLogger("callbridge.relay")

BATCH_SIZE = 200
POLL_SECONDS = 1.0
# While events keep coming (the last batch held more than one), wait this long after a wake-up
# so that more of them settle: each batch costs a few database round trips, which a batch of a
# few events would not repay. A lone event goes out at once.
GATHER_SECONDS = 0.02


class Relay:
    def __init__(self, store: Store, connection: Connection, *, ready: threading.Event):
        self.store = store
        # Confirms are asked for by the connection's ``confirm_publish`` option (RabbitMQ);
        # with it on, every publish would wait for its own confirm, so the relay publishes on a
        # copy with it off and selects confirm mode on its channel itself.
        self.confirming = bool(connection.transport_options.get("confirm_publish"))
        if self.confirming:
            options = {**connection.transport_options, "confirm_publish": False}
            connection = connection.clone(transport_options=options)
        self.connection = connection
        self.ready = ready
        self._channel = None
        self._confirms: _Confirms | None = None

    def publish_pending(self, *, limit: int = BATCH_SIZE) -> int:
        """Publish one batch of unsent events; the number published."""
        with self.store.pending_events(limit) as (batch, published):
            tags = [self._publish(pending) for pending in batch]
            refused = (
                self._confirms.wait(self.connection, timeout=CONFIRM_TIMEOUT_SECONDS)
                if self._confirms is not None
                else set()
            )
            sent = [pending for pending, tag in zip(batch, tags, strict=True) if tag not in refused]
            published.extend(pending.id for pending in sent)
        for pending in batch:
            if pending not in sent:
                # It stays in the outbox and is tried again with the next batch; the rest of
                # this batch is not held back (nor published twice) for it.
                state_change(
                    log,
                    "event refused by the broker",
                    request_id=pending.event.request_id,
                    level=logging.WARNING,
                    event_id=pending.event.event_id,
                    queue=pending.event.queue,
                )
        for pending in sent:
            metrics.count_event_published(pending.event.event_type)
            state_change(
                log,
                "event published",
                request_id=pending.event.request_id,
                event_type=pending.event.event_type,
                event_id=pending.event.event_id,
                queue=pending.event.queue,
            )
        return len(sent)

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
            published = 0
            try:
                published = self.publish_pending()
                if published == BATCH_SIZE:
                    continue
            except (
                *self.connection.connection_errors,
                *self.connection.channel_errors,
                TimeoutError,
            ) as exc:
                log.warning("relay lost the broker (%s); reconnecting", type(exc).__name__)
                self._reset()
            self.ready.wait(POLL_SECONDS)
            if published > 1:
                time.sleep(GATHER_SECONDS)

    def _publish(self, pending: PendingEvent) -> int | None:
        """Publish on the channel itself, not through a kombu Producer: a Producer gives a body
        without a content type one of its own, and a dead letter must leave as it came."""
        event = pending.event
        properties = dict(event.properties)
        headers = properties.pop("headers", None) or {}
        channel = self._get_channel()
        message = channel.prepare_message(
            event.body,
            0,
            properties.pop("content_type", None),
            properties.pop("content_encoding", None),
            headers,
            {**properties, "delivery_mode": 2},
        )
        channel.basic_publish(
            message, exchange="", routing_key=event.queue, timeout=CONFIRM_TIMEOUT_SECONDS
        )
        return None if self._confirms is None else self._confirms.published()

    def _get_channel(self):
        """The channel, in confirm mode when the broker confirms publishes.

        No retry inside a batch: after a reconnection the confirms of the events published
        before it would be lost, so a broken connection fails the batch and ``run`` reconnects.
        """
        if self._channel is None:
            self.connection.ensure_connection(max_retries=3)
            channel = self.connection.default_channel
            self._confirms = _Confirms(channel) if self.confirming else None
            self._channel = channel
        return self._channel

    def _reset(self) -> None:
        self._channel = None
        self._confirms = None
        try:
            self.connection.close()
        except Exception:  # the connection is already broken; we only tidy up
            log.debug("closing a broken relay connection failed", exc_info=True)
        self.connection = self.connection.clone()


class _Confirms:
    """The publishes of one channel in confirm mode that the broker has not confirmed yet.

    The broker numbers a channel's publishes 1, 2, 3... and confirms them by number, one at a
    time or "all up to n" at once.
    """

    def __init__(self, channel) -> None:
        self._published = 0
        self._unconfirmed: set[int] = set()
        self._refused: set[int] = set()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.confirm_select()

    def published(self) -> int:
        """Note one more publish; its number (delivery tag) on this channel."""
        self._published += 1
        self._unconfirmed.add(self._published)
        return self._published

    def wait(self, connection: Connection, *, timeout: float) -> set[int]:
        """Until every publish so far is confirmed; the numbers of those the broker refused.
        TimeoutError when one is not confirmed in time."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} events not confirmed in {timeout} s")
            connection.drain_events(timeout=left)
        refused, self._refused = self._refused, set()
        return refused

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._unconfirmed -= self._covered(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        covered = self._covered(delivery_tag, multiple)
        self._refused |= covered
        self._unconfirmed -= covered

    def _covered(self, delivery_tag: int, multiple: bool) -> set[int]:
        if multiple:
            return {tag for tag in self._unconfirmed if tag <= delivery_tag}
        return {delivery_tag}
