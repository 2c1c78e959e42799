"""Connections to the broker, with the options every connection of ours needs.

RabbitMQ connections get heartbeats (the consume loop checks them about once a second) and
publisher confirms with a timeout, so that a publish can never hang forever on a dead broker.
The embedded default, kombu's ``filesystem://`` transport in a local folder, needs its folders
made; it has no confirms, no redelivery of a message read but not acked, and polls about once a
second — enough for a laptop, not for production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.transport.base import Message

from adapters.config import ConfigError, Settings, describe_broker, embedded_broker_folder

HEARTBEAT_SECONDS = 30
CONFIRM_TIMEOUT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 10.0
# A command gives up on an unreachable broker after one more try, a second later: an operator
# waiting on a typo learns of it at once.
COMMAND_CONNECT_RETRIES = 1


class BrokerUnreachable(ConfigError):
    """No connection to ``BROKER_URL`` could be made; the message names the broker."""


def is_embedded(broker_url: str) -> bool:
    return broker_url.startswith("filesystem://")


def connect(settings: Settings) -> Connection:
    """A (lazy) kombu connection to ``BROKER_URL``; call ``ensure_connection`` to open it."""
    url = settings.broker_url
    if is_embedded(url):
        folder = embedded_broker_folder(url)
        folder.mkdir(parents=True, exist_ok=True)
        return Connection(
            "filesystem://localhost/",
            transport_options={
                "data_folder_in": str(folder),
                "data_folder_out": str(folder),
                "control_folder": str(folder / "control"),
                "polling_interval": 0.1,
            },
        )
    return Connection(
        url,
        heartbeat=HEARTBEAT_SECONDS,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        transport_options={"confirm_publish": True},
    )


def ensure_connected(connection: Connection, settings: Settings) -> Connection:
    """Open a command's connection, or BrokerUnreachable naming the broker and why."""
    try:
        return connection.ensure_connection(
            max_retries=COMMAND_CONNECT_RETRIES, interval_start=1, interval_step=1, interval_max=1
        )
    except (OperationalError, *connection.connection_errors) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise BrokerUnreachable(
            f"BROKER_URL: cannot connect to {describe_broker(settings.broker_url)}: {reason}"
        ) from None


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What intake needs of a broker message, free of any transport."""

    body: bytes
    content_type: str | None = None
    content_encoding: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    message_id: str | None = None
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    routing_key: str | None = None


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
