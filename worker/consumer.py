"""The consume loop: take call requests off the broker and hand each to intake.

Built on kombu's ``ConsumerMixin``, which keeps the reconnect loop apart from message handling.
Every message is acked only after intake committed what it made of it; a message that cannot be
decoded is never dropped by kombu (we read the raw body ourselves) and never requeued forever
(intake dead-letters it). A message whose handling failed for a reason of ours (the database
is down) is requeued, so the broker keeps it until we can take it.

Messages the broker has already sent are taken as one batch: committed in one transaction,
acked with one ``multiple`` ack. A batch ends when no more are waiting on the socket, or at
``BATCH_MESSAGES`` messages or ``BATCH_BYTES`` bytes, so a lone message is never held back. If a
batch fails, its messages are taken again one at a time, so that only a message that fails on
its own is requeued.
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

from adapters import error_reporting
from adapters.broker import delivery_of
from adapters.config import Settings
from adapters.store import Store
from adapters.topology import contract_queues, declare
from handlers.accept import Verdict, accept, accept_batch

log = logging.getLogger("callbridge.consumer")

REQUEUE_PAUSE_SECONDS = 1.0
BATCH_MESSAGES = 100
BATCH_BYTES = 4 * 1024 * 1024


class RequestConsumer(ConsumerMixin):
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
        self._socket = None

    @property
    def should_stop(self) -> bool:
        """kombu's loop reads this flag; it is the worker's own, so one signal stops both."""
        return self._stopping.is_set()

    def get_consumers(self, Consumer, channel):
        """Declare the contract's queues and set the prefetch on every (re)connection."""
        declare(channel, self.settings)
        # Positional: the AMQP and the virtual (file) transports name the flags differently.
        channel.basic_qos(0, self.settings.prefetch_count, False)
        requests_queue = contract_queues(self.settings)[0]
        return [Consumer(queues=[requests_queue], on_message=self.on_message)]

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        log.warning(
            "broker connection failed (%s); retrying in %.1f s", type(exc).__name__, interval
        )

    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        # Messages of a batch from a lost connection can no longer be acked: the broker sends
        # them again.
        self._batch, self._batch_bytes = [], 0
        self._socket = getattr(connection.connection, "sock", None)
        log.info("consuming from %s", self.settings.call_requests_queue)

    def on_iteration(self) -> None:
        """Before waiting for the next message: take the batch unless more are already here."""
        if self._batch and (self.should_stop or not self._more_waiting()):
            self._take_batch()

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
        if len(batch) > 1:
            deliveries = [delivery_of(message) for message in batch]
            try:
                verdicts = accept_batch(deliveries, settings=self.settings, store=self.store)
            except Exception:  # each message is tried on its own, and reported if it fails alone
                log.warning(
                    "intake of %d messages failed; taking them one by one",
                    len(batch),
                    exc_info=True,
                )
            else:
                batch[-1].ack(multiple=True)
                for verdict in verdicts:
                    self.on_verdict(verdict)
                return
        for message in batch:
            self._take_one(message)

    def _take_one(self, message: Message) -> None:
        try:
            with error_reporting.job_scope("intake"):
                verdict = accept(delivery_of(message), settings=self.settings, store=self.store)
        except Exception:  # reported in job_scope; the broker keeps the message
            log.exception("intake failed; the message is requeued")
            message.requeue()
            time.sleep(REQUEUE_PAUSE_SECONDS)
            return
        message.ack()
        self.on_verdict(verdict)
