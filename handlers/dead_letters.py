"""The dead-letter queue: look at it, and move messages back for another try.

Listing consumes nothing: each message is taken unacknowledged and handed back (rejected with
requeue) when the listing is done, so the broker keeps it where it was. Only the messages in the
queue when the command starts are looked at (at most ``--limit``), so that a message a running
worker dead-letters again while we replay is never replayed in a loop.

Replaying publishes a copy to the requests queue — body and properties as they were, less
callbridge's ``x-callbridge-*`` headers — waits for the broker's confirm, and only then acks the
dead-letter copy: a crash in between leaves both copies, never neither.

Only a message the worker would now take is replayed; any other is kept, with the reason. The
command runs intake's own checks with its own settings (so run it with the worker's
environment): a message refused for a cause since removed — a ``MAX_MESSAGE_BYTES`` that was too
small — goes back, one that breaks the contract stays. A replayed message intake refused again
would be lost, not dead-lettered twice: its dead-letter copy has the event id of the first.
A request the store knows already stays too: it has had its one outcome, and the worker would
drop the copy as a duplicate. The contract's way to retry a rejected request is for the CRM to
send it again, mended, under a new ``request_id``.

A message is named by its ``message_id``, or, when the publisher set none, by ``sha256:`` and
the start of its body's hash — stable from one listing to the next.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable

from kombu import Connection
from kombu.message import Message

from adapters import broker
from adapters.broker import CONFIRM_TIMEOUT_SECONDS, delivery_of, raw_body
from adapters.config import Settings
from adapters.logs import redact
from adapters.store import Store, open_store, utcnow
from adapters.topology import contract_queue, declare
from handlers.accept import verdict_on

CALLBRIDGE_HEADERS = "x-callbridge-"
# The AMQP properties a replay copies. Not user_id: RabbitMQ refuses one that is not the
# publishing connection's own user.
COPIED_PROPERTIES = (
    "message_id",
    "correlation_id",
    "reply_to",
    "delivery_mode",
    "priority",
    "expiration",
    "timestamp",
    "type",
    "app_id",
)


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """What the listing shows of one message."""

    position: int
    key: str
    request_id: str | None
    reason: str | None
    size: int
    published_at: str | None
    dead_lettered_at: str | None

    def line(self) -> str:
        fields = {
            "id": self.key,
            "request_id": self.request_id or "-",
            "size": self.size,
            "published": self.published_at or "-",
            "dead_lettered": self.dead_lettered_at or "-",
        }
        text = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"#{self.position} {text} reason={redact(self.reason or '-')!r}"


@dataclasses.dataclass(frozen=True)
class Looked:
    """The messages looked at, of ``present`` in the queue when the look began."""

    present: int
    letters: list[DeadLetter]


@dataclasses.dataclass(frozen=True)
class ReplayOutcome:
    """What became of one message: replayed, or kept with the reason."""

    letter: DeadLetter
    replayed: bool
    reason: str | None = None


def look(settings: Settings, *, limit: int) -> Looked:
    """Every message present (up to ``limit``), each handed back unchanged."""
    letters: list[DeadLetter] = []
    with broker.connect(settings) as connection:
        present = _walk(
            connection, settings, limit, lambda letter, _message: letters.append(letter)
        )
    return Looked(present, letters)


def replay(settings: Settings, *, key: str | None, limit: int) -> tuple[int, list[ReplayOutcome]]:
    """Replay the message named ``key``, or every message when ``key`` is None; how many
    messages the queue held, and what became of each one looked at."""
    store = open_store(settings.database_url, pool_size=1)
    outcomes: list[ReplayOutcome] = []

    def visit(letter: DeadLetter, message: Message) -> bool:
        if key is not None and letter.key != key:
            return False
        refusal = why_kept(message, settings, store)
        if refusal is not None:
            outcomes.append(ReplayOutcome(letter, False, refusal))
            return False
        _republish(message, settings.call_requests_queue)
        message.ack()
        outcomes.append(ReplayOutcome(letter, True))
        return True

    try:
        with broker.connect(settings) as connection:
            present = _walk(connection, settings, limit, visit)
    finally:
        store.engine.dispose()
    return present, outcomes


def _walk(
    connection: Connection,
    settings: Settings,
    limit: int,
    visit: Callable[[DeadLetter, Message], bool | None],
) -> int:
    """Show each message present now (up to ``limit``) to ``visit``, and hand back every one it
    did not take (``visit`` returns True when it acked the message); how many were present."""
    connection.ensure_connection(max_retries=3)
    channel = connection.default_channel
    declare(channel, settings)
    present = channel.queue_declare(settings.dead_letter_queue, passive=True).message_count
    queue = contract_queue(settings.dead_letter_queue)(channel)
    held: list[Message] = []
    for position in range(1, min(present, limit) + 1):
        message = queue.get(no_ack=False)
        if message is None:
            break
        if not visit(describe(message, position), message):
            held.append(message)
    # In the order taken, so the broker puts them back as they were. Were we to fail before
    # this, closing the connection would hand them back all the same.
    for message in held:
        message.requeue()
    return present


def describe(message: Message, position: int) -> DeadLetter:
    body = raw_body(message.body, message.content_encoding)
    headers = message.headers or {}
    message_id = message.properties.get("message_id")
    return DeadLetter(
        position=position,
        key=message_id or f"sha256:{hashlib.sha256(body).hexdigest()[:16]}",
        request_id=headers.get("x-callbridge-request-id"),
        reason=headers.get("x-callbridge-reason"),
        size=len(body),
        published_at=_moment(message.properties.get("timestamp")),
        dead_lettered_at=headers.get("x-callbridge-rejected-at"),
    )


def _republish(message: Message, queue: str) -> None:
    """Publish the message as it came, less our headers, and wait for the broker's confirm."""
    properties = {
        name: message.properties[name]
        for name in COPIED_PROPERTIES
        if message.properties.get(name) is not None
    }
    headers = {
        name: value
        for name, value in (message.headers or {}).items()
        if not name.startswith(CALLBRIDGE_HEADERS)
    }
    channel = message.channel
    copy = channel.prepare_message(
        raw_body(message.body, message.content_encoding),
        properties.pop("priority", None),
        message.content_type or None,
        message.content_encoding or None,
        headers,
        properties,
    )
    channel.basic_publish(
        copy, exchange="", routing_key=queue, confirm_timeout=CONFIRM_TIMEOUT_SECONDS
    )


def why_kept(message: Message, settings: Settings, store: Store) -> str | None:
    """Why replaying the message would change nothing, or None when the worker would take it."""
    verdict = verdict_on(delivery_of(message), settings=settings, now=utcnow())
    if verdict.outcome == "rejected":
        return f"intake would refuse it again: {redact(verdict.reason or '')}"
    row = store.get_request(verdict.request_id)
    if row is not None:
        return (
            f"request {verdict.request_id} is known already ({row.state}): the worker would "
            "drop the copy as a duplicate"
        )
    return None


def _moment(timestamp: object) -> str | None:
    """An AMQP timestamp (seconds since the epoch, or a datetime) in ISO-8601 UTC."""
    if timestamp is None:
        return None
    if not isinstance(timestamp, dt.datetime):
        timestamp = dt.datetime.fromtimestamp(float(timestamp), dt.UTC)
    return timestamp.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
