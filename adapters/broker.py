"""Connections to the broker, with the options every connection of ours needs.

RabbitMQ connections get heartbeats (``BROKER_HEARTBEAT_SECONDS``; whoever holds a connection
calls ``heartbeat_check`` about once a second) and publisher confirms with a timeout, so that a
publish can never hang forever on a dead broker. A broker that cannot be reached, or refuses the
login, is told in one line by ``describe_fault``; retrying is the holder's (the consume loop and
the relay each wait, stoppably, between tries). AMQP short strings hold 255 bytes:
``fit_properties`` shortens what would not fit, so a long identifier cannot fail a publish.
The embedded default, kombu's ``filesystem://`` transport in a local folder, needs its folders
made; it has no confirms, no redelivery of a message read but not acked, and polls about once a
second — enough for a laptop, not for production.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

import amqp.exceptions
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.transport.base import Message

from adapters.config import ConfigError, Settings, describe_broker, embedded_broker_folder
from schemas.identifiers import fit_short_string

CONFIRM_TIMEOUT_SECONDS = 15.0
# heartbeat_check(rate=...): a heartbeat goes out once nothing was sent for a quarter of the
# interval, so that a turn of the loop delayed by a busy machine still comes in time.
HEARTBEAT_RATE = 4
CONNECT_TIMEOUT_SECONDS = 5.0
# A command gives up on an unreachable broker after one more try, a second later: an operator
# waiting on a typo learns of it at once.
COMMAND_CONNECT_RETRIES = 1
# The basic properties that are AMQP short strings.
SHORT_STRING_PROPERTIES = (
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "type",
    "user_id",
    "app_id",
)


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
        heartbeat=settings.broker_heartbeat_seconds,
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


def faults(connection: Connection) -> tuple[type[BaseException], ...]:
    """What a broker that is unreachable, refuses us, or drops us raises on ``connection``."""
    return (*connection.connection_errors, *connection.channel_errors, OperationalError)


def describe_fault(exc: BaseException, connection: Connection) -> str:
    """One line naming the broker and what went wrong; never the password."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) and exc.__cause__ else exc
    where = f"broker {connection.hostname}:{connection.port or 5672}"
    if isinstance(cause, amqp.exceptions.AccessRefused):
        return f"{where} refused the login of user {connection.userid!r}: {_text(cause)}"
    if isinstance(cause, amqp.exceptions.NotAllowed):
        vhost = connection.virtual_host
        return f"{where} refused the virtual host {vhost!r}: {_text(cause)}"
    if isinstance(cause, ConnectionRefusedError):
        return f"{where} refused the connection: nothing listens there"
    if isinstance(cause, socket.gaierror):
        return f"{where}: the host name is not known ({cause.strerror})"
    if isinstance(cause, TimeoutError):  # socket.timeout too
        return f"{where} did not answer in time"
    if isinstance(cause, amqp.exceptions.AMQPError):
        return f"{where} closed the connection: {_text(cause) or type(cause).__name__}"
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{where}: {type(cause).__name__}{': ' + text if text else ''}"


def _text(error: amqp.exceptions.AMQPError) -> str:
    return (error.reply_text or "").strip().rstrip(".")


def fit_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """``properties`` (headers under ``headers``) with every short string shortened to fit
    AMQP's 255 bytes; the full values stay in the body."""
    fitted = {
        name: fit_short_string(value)
        if name in SHORT_STRING_PROPERTIES and isinstance(value, str)
        else value
        for name, value in properties.items()
    }
    if isinstance(headers := fitted.get("headers"), Mapping):
        fitted["headers"] = {
            fit_short_string(name) if isinstance(name, str) else name: value
            for name, value in headers.items()
        }
    return fitted


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
    # The broker handed it out before (requeued, or held by a worker that died).
    redelivered: bool = False


def delivery_of(message: Message) -> Delivery:
    properties = message.properties or {}
    delivery_info = message.delivery_info or {}
    return Delivery(
        body=raw_body(message.body, message.content_encoding),
        content_type=message.content_type or None,
        content_encoding=message.content_encoding or None,
        correlation_id=properties.get("correlation_id"),
        reply_to=properties.get("reply_to"),
        message_id=properties.get("message_id"),
        headers=dict(message.headers or {}),
        routing_key=delivery_info.get("routing_key"),
        redelivered=bool(delivery_info.get("redelivered")),
    )


def raw_body(body: bytes | str, content_encoding: str | None) -> bytes:
    """The bytes as published: py-amqp decodes a body that names its content_encoding, and
    encoding it back with the same codec restores them exactly."""
    if isinstance(body, bytes):
        return body
    return body.encode(content_encoding or "utf-8")
