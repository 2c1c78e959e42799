"""The consume loop: take call requests off the broker and hand each to intake.

Built on kombu's ``ConsumerMixin``, which keeps the reconnect loop apart from message handling.
Every message is acked only after intake committed what it made of it; a message that cannot be
decoded is never dropped by kombu (we read the raw body ourselves) and never requeued forever
(intake dead-letters it). A message whose handling failed for a reason of ours (the database
is down) is requeued, so the broker keeps it until we can take it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kombu import Connection
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message

from handlers.accept import Delivery, Verdict, accept
from worker import error_reporting
from worker.config import Settings
from worker.store import Store
from worker.topology import contract_queues, declare

log = logging.getLogger("callbridge.consumer")

REQUEUE_PAUSE_SECONDS = 1.0


class RequestConsumer(ConsumerMixin):
    def __init__(
        self,
        connection: Connection,
        *,
        settings: Settings,
        store: Store,
        on_verdict: Callable[[Verdict], None],
        on_iteration: Callable[[], None] | None = None,
    ):
        self.connection = connection
        self.settings = settings
        self.store = store
        self.on_verdict = on_verdict
        self._on_iteration = on_iteration

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
        log.info("consuming from %s", self.settings.call_requests_queue)

    def on_iteration(self) -> None:
        if self._on_iteration is not None:
            self._on_iteration()

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        """Never reached (we decode the raw body ourselves); refuse kombu's ack-and-drop."""
        self.on_message(message)

    def on_message(self, message: Message) -> None:
        delivery = delivery_of(message)
        try:
            with error_reporting.job_scope("intake"):
                verdict = accept(delivery, settings=self.settings, store=self.store)
        except Exception:  # reported in job_scope; the broker keeps the message
            log.exception("intake failed; the message is requeued")
            message.requeue()
            time.sleep(REQUEUE_PAUSE_SECONDS)
            return
        message.ack()
        self.on_verdict(verdict)


def delivery_of(message: Message) -> Delivery:
    properties = message.properties or {}
    return Delivery(
        body=raw_body(message.body, message.content_encoding),
        content_type=message.content_type or None,
        content_encoding=message.content_encoding or None,
        correlation_id=properties.get("correlation_id"),
        reply_to=properties.get("reply_to"),
        message_id=properties.get("message_id"),
        headers=dict(message.headers or {}),
        routing_key=(message.delivery_info or {}).get("routing_key"),
    )


def raw_body(body: bytes | str, content_encoding: str | None) -> bytes:
    """The bytes as published: py-amqp decodes a body that names its content_encoding, and
    encoding it back with the same codec restores them exactly."""
    if isinstance(body, bytes):
        return body
    return body.encode(content_encoding or "utf-8")
