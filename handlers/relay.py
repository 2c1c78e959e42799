"""Step 4: publish the outbox, marking each event sent only after the broker confirmed it.

Runs in its own thread with its own connection (kombu connections are not shared between
threads). Confirms are waited for per batch, not per message: every event of a batch is
published, then the relay waits until the broker has confirmed them all, then settles them all;
waiting per message would cost a broker round trip per event. A timeout or a lost connection
settles none of the batch, and a crash between the confirms and the settling settles none
either: those events are published again. Delivery is at-least-once, and the stable
``event_id`` / ``message_id`` lets the CRM drop the copy.

Nothing in the outbox can hold back the rest:

* identifiers go out fitted to AMQP's 255-byte short strings (``fit_properties``);
* an event AMQP cannot carry at all is set aside at once, with the reason;
* an event the broker refuses (a nack: a reply queue that is full, say) is tried again after
  a pause that doubles from 1 s, and set aside at its ``MAX_PUBLISH_REFUSALS``-th refusal;
* every event is published ``mandatory``: one that no queue takes (a ``reply_to`` that does not
  exist) comes back (RabbitMQ returns it before it confirms it) and is sent to
  ``CALL_RESULTS_QUEUE`` instead, its ``x-callbridge-unroutable-queue`` header naming the queue
  it was for; counted, and warned about in Sentry once per queue. One that the results queue or
  the dead-letter queue does not take either is set aside.

A set-aside event stays in the outbox, never published: ``callbridge status`` and ``health``
show it, and so does the ``callbridge_outbox_set_aside`` metric.

The connection is made one try at a time, with a pause between tries that doubles up to
``MAX_PAUSE_SECONDS`` and ends when the worker stops; while idle the relay reads the broker's
heartbeats and sends its own, so an idle connection is not dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kombu import Connection

from adapters import broker, error_reporting, metrics
from adapters.broker import CONFIRM_TIMEOUT_SECONDS, HEARTBEAT_RATE, fit_properties
from adapters.config import Settings
from adapters.logs import state_change
from adapters.store import PendingEvent, Settlement, Store, utcnow
from handlers.retry_policy import compute_backoff

log = logging.getLogger("callbridge.relay")

BATCH_SIZE = 200
POLL_SECONDS = 1.0
# While events keep coming (the last batch held more than one), wait this long after a wake-up
# so that more of them settle: each batch costs a few database round trips, which a batch of a
# few events would not repay. A lone event goes out at once.
GATHER_SECONDS = 0.02
MAX_PAUSE_SECONDS = 30.0
MAX_REFUSAL_PAUSE_SECONDS = 300.0
# How long an idle relay waits to read what the broker sent (heartbeats), at each poll.
KEEP_ALIVE_READ_SECONDS = 0.01
UNROUTABLE_HEADER = "x-callbridge-unroutable-queue"
# The queues already warned about in Sentry, kept to this many (a CRM may name a new one each time).
MAX_WARNED_QUEUES = 1000


@dataclasses.dataclass(frozen=True, eq=False)
class _Sent:
    """One publish of a batch, as the broker will answer about it (compared by identity)."""

    pending: PendingEvent
    tag: int | None
    routing_key: str
    message_id: str | None


class Relay:
    def __init__(
        self, store: Store, connection: Connection, *, ready: threading.Event, settings: Settings
    ):
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
        self.results_queue = settings.call_results_queue
        self.max_refusals = settings.max_publish_refusals
        self._faults = broker.faults(connection)
        self._channel = None
        self._confirms: _Confirms | None = None
        self._connect_failures = 0
        self._warned_queues: set[str] = set()

    @property
    def broker_failing(self) -> bool:
        """Whether the last try to reach the broker failed (and none has succeeded since)."""
        return self._connect_failures > 0

    def publish_pending(self, *, limit: int = BATCH_SIZE) -> int:
        """Publish one batch of due events; the number published."""
        return self._publish_batch(limit)[0]

    def drain(self) -> int:
        """Publish until nothing is due (used at shutdown and by the CLI)."""
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
                published, handled = self._publish_batch(BATCH_SIZE)
                if handled == BATCH_SIZE:
                    continue
                self._keep_alive()
            except (*self._faults, TimeoutError) as exc:
                self._lost(exc, should_stop)
                continue
            self.ready.wait(POLL_SECONDS)
            if published > 1:
                time.sleep(GATHER_SECONDS)

    # -- one batch -----------------------------------------------------------------------

    def _publish_batch(self, limit: int) -> tuple[int, int]:
        """Publish a batch and settle it; how many were published, and how many handled."""
        with self.store.pending_events(limit) as (batch, settlement):
            sent: list[_Sent] = []
            for pending in batch:
                try:
                    sent.append(self._publish(pending))
                except self._faults:
                    raise
                except Exception as exc:  # the event itself: AMQP cannot carry it
                    reason = f"AMQP cannot carry it ({type(exc).__name__}: {exc})"
                    self._set_aside(settlement, pending, reason)
            refused, returned = self._answers()
            published = []
            for publish in sent:
                if publish in returned:
                    self._unroutable(settlement, publish.pending)
                elif publish.tag in refused:
                    self._refused(settlement, publish.pending)
                else:
                    published.append(publish.pending)
            settlement.published.extend(pending.id for pending in published)
        for pending in published:
            self._announce_published(pending)
        return len(published), len(batch)

    def _answers(self) -> tuple[set[int], list[_Sent]]:
        """The tags of the publishes the broker refused, and the publishes it returned."""
        if self._confirms is None:
            return set(), []
        return self._confirms.wait(self.connection, timeout=CONFIRM_TIMEOUT_SECONDS)

    def _publish(self, pending: PendingEvent) -> _Sent:
        """Publish on the channel itself, not through a kombu Producer: a Producer gives a body
        without a content type one of its own, and a dead letter must leave as it came."""
        event = pending.event
        properties = fit_properties(event.properties)
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
            message,
            exchange="",
            routing_key=event.queue,
            mandatory=True,
            timeout=CONFIRM_TIMEOUT_SECONDS,
        )
        # Noted once sent: the broker's answers are read only while waiting for them.
        tag = None if self._confirms is None else self._confirms.next_tag()
        sent = _Sent(pending, tag, event.queue, properties.get("message_id"))
        if self._confirms is not None:
            self._confirms.expect(sent)
        return sent

    # -- what the broker said ------------------------------------------------------------

    def _refused(self, settlement: Settlement, pending: PendingEvent) -> None:
        refusals = pending.refusals + 1
        if refusals >= self.max_refusals:
            reason = f"refused by the broker {refusals} times (MAX_PUBLISH_REFUSALS)"
            self._set_aside(settlement, pending, reason)
            return
        pause = compute_backoff(refusals, max_delay=MAX_REFUSAL_PAUSE_SECONDS, jitter=0)
        settlement.refused[pending.id] = utcnow() + dt.timedelta(seconds=pause)
        state_change(
            log,
            "event refused by the broker",
            request_id=pending.event.request_id,
            level=logging.WARNING,
            event_id=pending.event.event_id,
            queue=pending.event.queue,
            refusals=refusals,
            retry_in_seconds=pause,
        )

    def _unroutable(self, settlement: Settlement, pending: PendingEvent) -> None:
        """No queue took it: to the results queue, unless that is where it went already."""
        event = pending.event
        metrics.count_event_unroutable(event.event_type)
        if event.queue == self.results_queue or event.event_type == "dead_letter":
            self._set_aside(settlement, pending, f"no queue named {event.queue!r} took it")
            return
        properties: dict[str, Any] = dict(event.properties)
        headers = properties.get("headers") or {}
        properties["headers"] = {**headers, UNROUTABLE_HEADER: event.queue}
        settlement.readdressed[pending.id] = (self.results_queue, properties)
        state_change(
            log,
            "event unroutable",
            request_id=event.request_id,
            level=logging.WARNING,
            event_id=event.event_id,
            queue=event.queue,
            sent_to=self.results_queue,
        )
        self._warn_once(event.queue)

    def _warn_once(self, queue: str) -> None:
        if queue in self._warned_queues:
            return
        if len(self._warned_queues) >= MAX_WARNED_QUEUES:
            self._warned_queues.clear()
        self._warned_queues.add(queue)
        error_reporting.capture_unroutable(queue=queue, results_queue=self.results_queue)

    @staticmethod
    def _set_aside(settlement: Settlement, pending: PendingEvent, reason: str) -> None:
        settlement.set_aside[pending.id] = reason[:1000]
        state_change(
            log,
            "event set aside",
            request_id=pending.event.request_id,
            level=logging.ERROR,
            event_id=pending.event.event_id,
            queue=pending.event.queue,
            reason=reason[:1000],
        )

    @staticmethod
    def _announce_published(pending: PendingEvent) -> None:
        metrics.count_event_published(pending.event.event_type)
        state_change(
            log,
            "event published",
            request_id=pending.event.request_id,
            event_type=pending.event.event_type,
            event_id=pending.event.event_id,
            queue=pending.event.queue,
        )

    # -- the connection ------------------------------------------------------------------

    def _get_channel(self):
        """The channel, in confirm mode when the broker confirms publishes.

        One connection try: ``run`` waits between tries. No retry inside a batch either: after
        a reconnection the confirms of the events published before it would be lost, so a
        broken connection fails the batch and ``run`` reconnects.
        """
        if self._channel is None:
            self.connection.ensure_connection(max_retries=0)
            channel = self.connection.default_channel
            self._confirms = _Confirms(channel) if self.confirming else None
            self._channel = channel
            self._connect_failures = 0
        return self._channel

    def _keep_alive(self) -> None:
        """Read what the broker sent while we were idle (its heartbeats), and send ours."""
        if self._channel is None or not self.connection.supports_heartbeats:
            return
        with contextlib.suppress(TimeoutError):  # nothing came: socket.timeout
            self.connection.drain_events(timeout=KEEP_ALIVE_READ_SECONDS)
        self.connection.heartbeat_check(rate=HEARTBEAT_RATE)

    def _lost(self, exc: BaseException, should_stop: Callable[[], bool]) -> None:
        """One line for the fault, then a pause (doubling while faults go on) before retrying."""
        self._connect_failures += 1
        pause = compute_backoff(self._connect_failures, max_delay=MAX_PAUSE_SECONDS)
        cause = "confirms did not come in time" if isinstance(exc, TimeoutError) else None
        log.warning(
            "relay: %s; trying again in %.1f s",
            cause or broker.describe_fault(exc, self.connection),
            pause,
        )
        self._reset()
        deadline = time.monotonic() + pause
        while not should_stop() and (left := deadline - time.monotonic()) > 0:
            self.ready.wait(left)
            self.ready.clear()

    def _reset(self) -> None:
        self._channel = None
        self._confirms = None
        try:
            self.connection.close()
        except Exception:  # the connection is already broken; we only tidy up
            log.debug("closing a broken relay connection failed", exc_info=True)
        self.connection = self.connection.clone()


class _Confirms:
    """The publishes of one channel in confirm mode that the broker has not answered yet.

    The broker numbers a channel's publishes 1, 2, 3... and confirms them by number, one at a
    time or "all up to n" at once. A mandatory publish that no queue takes is returned first
    (basic.return, which names no number: it is matched by routing key and message_id to the
    earliest such publish not yet confirmed), then confirmed.
    """

    def __init__(self, channel) -> None:
        self._published = 0
        self._unconfirmed: dict[int, _Sent] = {}
        self._refused: set[int] = set()
        self._returned: list[_Sent] = []
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        channel.confirm_select()

    def next_tag(self) -> int:
        """Note one more publish; its number (delivery tag) on this channel."""
        self._published += 1
        return self._published

    def expect(self, sent: _Sent) -> None:
        """Wait for the broker's answer about this publish."""
        self._unconfirmed[sent.tag] = sent

    def wait(self, connection: Connection, *, timeout: float) -> tuple[set[int], list[_Sent]]:
        """Until every publish so far is confirmed: the numbers of those the broker refused,
        and the publishes it returned. TimeoutError when one is not confirmed in time."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} events not confirmed in {timeout} s")
            connection.drain_events(timeout=left)
        refused, self._refused = self._refused, set()
        returned, self._returned = self._returned, []
        return refused, returned

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._covered(delivery_tag, multiple):
            self._unconfirmed.pop(tag, None)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._covered(delivery_tag, multiple):
            if self._unconfirmed.pop(tag, None) is not None:
                self._refused.add(tag)

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        message_id = (message.properties or {}).get("message_id")
        for tag in sorted(self._unconfirmed):
            sent = self._unconfirmed[tag]
            if (sent.routing_key, sent.message_id) == (routing_key, message_id) and (
                sent not in self._returned
            ):
                self._returned.append(sent)
                return
        log.warning("the broker returned a message no publish of this batch matches")

    def _covered(self, delivery_tag: int, multiple: bool) -> list[int]:
        if multiple:
            return [tag for tag in self._unconfirmed if tag <= delivery_tag]
        return [delivery_tag]
