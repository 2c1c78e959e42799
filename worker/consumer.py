"""The consume loop: take call requests off the broker and hand each to intake.

Built on kombu's ``ConsumerMixin``, which keeps the reconnect loop apart from message handling.
Every message is acked only after intake committed what it made of it; a message that cannot be
decoded is never dropped by kombu (we read the raw body ourselves) and never requeued forever
(intake rejects whatever about a message makes it fail, and counts the deliveries of a message
that comes back). A batch whose handling failed for a reason of ours (the store is down) is
requeued after a pause that doubles while the fault lasts, so the broker keeps it until we can
take it.

Messages the broker has already sent are taken as one batch: committed in one transaction,
acked with one ``multiple`` ack. A batch ends when no more are waiting on the socket, or at
``BATCH_MESSAGES`` messages or ``BATCH_BYTES`` bytes, so a lone message is never held back.

The connection is made one try at a time: a broker that cannot be reached, or refuses the login
or the virtual host, is one log line per try, and the wait between tries (doubling up to
``MAX_PAUSE_SECONDS``) ends as soon as the worker is told to stop. Heartbeats are checked at
every turn of the loop, about once a second.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable

from kombu import Connection
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message

from adapters import broker
from adapters.broker import HEARTBEAT_RATE, delivery_of
from adapters.config import Settings
from adapters.store import Store, describe_store_fault, is_store_fault
from adapters.topology import contract_queues, declare
from handlers.accept import Verdict, accept_batch
from handlers.retry_policy import compute_backoff

log = logging.getLogger("callbridge.consumer")

BATCH_MESSAGES = 100
BATCH_BYTES = 4 * 1024 * 1024
MAX_PAUSE_SECONDS = 30.0
# The longest a pause sleeps between two looks at the stop flag and the heartbeat.
PAUSE_STEP_SECONDS = 0.25


class RequestConsumer(ConsumerMixin):
    # One connection try per round of ``run``, which waits between rounds itself.
    connect_max_retries = 0

    def __init__(
        self,
        connection: Connection,
        *,
        settings: Settings,
        store: Store,
        on_verdict: Callable[[Verdict], None],
        stopping: threading.Event,
    ):
        self.connection = connection
        self.settings = settings
        self.store = store
        self.on_verdict = on_verdict
        self._stopping = stopping
        self._batch: list[Message] = []
        self._batch_bytes = 0
        self._live: Connection | None = None
        self._socket = None
        self._connect_failures = 0
        self._intake_failures = 0

    @property
    def should_stop(self) -> bool:
        """kombu's loop reads this flag; it is the worker's own, so one signal stops both."""
        return self._stopping.is_set()

    def run(self) -> None:
        """Consume until told to stop, reconnecting after every broker fault."""
        faults = broker.faults(self.connection)
        while not self.should_stop:
            try:
                for _ in self.consume(limit=None):
                    pass
            except faults as exc:
                self._live = None
                self._connect_failures += 1
                pause = compute_backoff(self._connect_failures, max_delay=MAX_PAUSE_SECONDS)
                log.warning(
                    "%s; trying again in %.1f s",
                    broker.describe_fault(exc, self.connection),
                    pause,
                )
                self._pause(pause)

    def get_consumers(self, Consumer, channel):
        """Declare the contract's queues and set the prefetch on every (re)connection."""
        declare(channel, self.settings)
        # Positional: the AMQP and the virtual (file) transports name the flags differently.
        channel.basic_qos(0, self.settings.prefetch_count, False)
        requests_queue = contract_queues(self.settings)[0]
        return [Consumer(queues=[requests_queue], on_message=self.on_message)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        # Messages of a batch from a lost connection can no longer be acked: the broker sends
        # them again.
        self._batch, self._batch_bytes = [], 0
        self._live = connection
        self._socket = getattr(connection.connection, "sock", None)
        self._connect_failures = 0
        log.info("consuming from %s", self.settings.call_requests_queue)

    def on_iteration(self) -> None:
        """Before waiting for the next message: take the batch unless more are already here."""
        if self._batch and (self.should_stop or not self._more_waiting()):
            self._take_batch()
        self._live.heartbeat_check(rate=HEARTBEAT_RATE)

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """Never reached (we decode the raw body ourselves); refuse kombu's ack-and-drop."""
        self.on_message(message)

    def on_message(self, message: Message) -> None:
        self._batch.append(message)
        self._batch_bytes += len(message.body)
        if len(self._batch) >= BATCH_MESSAGES or self._batch_bytes >= BATCH_BYTES:
            self._take_batch()

    def _more_waiting(self) -> bool:
        """Whether the broker has sent more already (transports without a socket: never)."""
        return self._socket is not None and bool(select.select([self._socket], [], [], 0)[0])

    def _take_batch(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        try:
            verdicts = accept_batch(
                [delivery_of(message) for message in batch],
                settings=self.settings,
                store=self.store,
            )
        except Exception as exc:  # the store failed (or intake itself): the broker keeps them
            log.warning(
                "intake could not count deliveries (%s)",
                describe_store_fault(exc),
                exc_info=not is_store_fault(exc),
            )
            self._requeue_later(batch)
            return
        failed = [message for message, verdict in zip(batch, verdicts, strict=True) if not verdict]
        if not failed:
            batch[-1].ack(multiple=True)
        else:
            for message, verdict in zip(batch, verdicts, strict=True):
                if verdict:
                    message.ack()
        for verdict in verdicts:
            if verdict:
                self.on_verdict(verdict)
        if failed:
            self._requeue_later(failed)
        else:
            self._intake_failures = 0

    def _requeue_later(self, messages: list[Message]) -> None:
        """Hand the messages back after a pause that grows while the failures go on; each
        delivery after the first is counted, so a message cannot come back for ever."""
        self._intake_failures += 1
        pause = compute_backoff(self._intake_failures, max_delay=MAX_PAUSE_SECONDS)
        log.warning("%d message(s) go back to the queue in %.0f s", len(messages), pause)
        self._pause(pause)
        for message in messages:
            message.requeue()

    def _pause(self, seconds: float) -> None:
        """Sleep, keeping the connection's heartbeats, until ``seconds`` pass or a stop.

        Sleeps rather than waiting on the stop event: the signal handler sets that event on
        this (the main) thread, and must never find its lock held by the thread it interrupts.
        """
        deadline = time.monotonic() + seconds
        while not self.should_stop and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, PAUSE_STEP_SECONDS))
            if self._live is not None and self._live.connected:
                self._live.heartbeat_check(rate=HEARTBEAT_RATE)
