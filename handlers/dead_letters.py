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
the start of its body's hash — stable from one listing to the next. The listing shows each
message's errors, as intake found them, with their messages; ``show`` shows one message whole
(properties, headers, body), phones masked as ``adapters.logs.mask_document`` masks them.

``drop`` removes a message that can never be replayed (intake would refuse it, or the store
knows its request already): the CRM has its rejection, and the dead-letter queue keeps only
what still needs someone. A message intake would take now is kept: replay it instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable

from amqp.exceptions import MessageNacked
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.message import Message

from adapters import broker
from adapters.broker import CONFIRM_TIMEOUT_SECONDS, delivery_of, raw_body
from adapters.config import Settings
from adapters.logs import mask_document, redact, secrets_from
from adapters.store import Store, open_store, utcnow
from adapters.topology import contract_queue, declare
from handlers.accept import error_lines, problems, verdict_on

CALLBRIDGE_HEADERS = "x-callbridge-"
ERRORS_HEADER = "x-callbridge-errors"
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
    # What intake found wrong, one line each, with the messages (``x-callbridge-errors``).
    errors: tuple[str, ...] = ()

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
class Shown:
    """One message whole, to show an operator: phones masked, add_data values hidden."""

    letter: DeadLetter
    properties: dict
    headers: dict
    body: object  # the decoded JSON, masked; or the text, redacted, when it is not JSON


@dataclasses.dataclass(frozen=True)
class Dropped:
    """What became of the message ``drop`` was asked to remove, and why."""

    letter: DeadLetter
    dropped: bool
    reason: str

    def line(self, queue: str) -> str:
        """What an operator is told (``queue``: the dead-letter queue)."""
        letter = self.letter
        if not self.dropped:
            return f"kept #{letter.position} id={letter.key}: {self.reason}"
        return f"dropped #{letter.position} id={letter.key} from {queue}: {self.reason}"


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

    def line(self, queue: str) -> str:
        """What an operator is told (``queue``: the requests queue)."""
        letter = self.letter
        if self.replayed:
            return f"replayed #{letter.position} id={letter.key} to {queue}"
        return f"kept #{letter.position} id={letter.key}: {self.reason}"


def replay_summary(outcomes: list[ReplayOutcome]) -> str:
    replayed = sum(outcome.replayed for outcome in outcomes)
    return f"replayed {replayed}, kept {len(outcomes) - replayed}"


def broker_failures(settings: Settings) -> tuple[type[BaseException], ...]:
    """What the broker raises when it fails under a look, a replay or a drop: every message
    not reported replayed or dropped is then still in the dead-letter queue."""
    probe = broker.connect(settings)  # lazy: only asked which errors its transport raises
    return (OperationalError, MessageNacked, *probe.connection_errors, *probe.channel_errors)


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
    store = open_store(settings.database_url, pool_size=1, must_exist=True)
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


def show(settings: Settings, *, key: str, limit: int) -> tuple[int, Shown | None]:
    """The message named ``key`` whole (None when there is none), every message handed back."""
    found: list[Shown] = []

    def visit(letter: DeadLetter, message: Message) -> bool:
        if letter.key == key and not found:
            found.append(_shown(message, letter, settings))
        return False

    with broker.connect(settings) as connection:
        present = _walk(connection, settings, limit, visit)
    return present, (found[0] if found else None)


def drop(settings: Settings, *, key: str, limit: int) -> tuple[int, Dropped | None]:
    """Remove the message named ``key`` if it can never be replayed; what became of it (None
    when there is no such message). Every other message is handed back."""
    store = open_store(settings.database_url, pool_size=1, must_exist=True)
    outcome: list[Dropped] = []

    def visit(letter: DeadLetter, message: Message) -> bool:
        if letter.key != key or outcome:
            return False
        refusal = why_kept(message, settings, store)
        if refusal is None:
            outcome.append(
                Dropped(letter, False, "intake would take it now: replay it with --replay")
            )
            return False
        message.ack()
        outcome.append(Dropped(letter, True, refusal))
        return True

    try:
        with broker.connect(settings) as connection:
            present = _walk(connection, settings, limit, visit)
    finally:
        store.engine.dispose()
    return present, (outcome[0] if outcome else None)


def _shown(message: Message, letter: DeadLetter, settings: Settings) -> Shown:
    secrets = secrets_from(settings)
    headers = {k: v for k, v in (message.headers or {}).items() if k != ERRORS_HEADER}
    properties = {
        name: _jsonable(message.properties[name])
        for name in COPIED_PROPERTIES
        if message.properties.get(name) is not None
    }
    properties.update(content_type=message.content_type, content_encoding=message.content_encoding)
    text = raw_body(message.body, message.content_encoding).decode("utf-8", "replace")
    try:
        body = mask_document(json.loads(text), secrets)
    except (ValueError, RecursionError):
        body = redact(text, secrets)
    return Shown(
        letter,
        mask_document(properties, secrets),
        mask_document({k: _jsonable(v) for k, v in headers.items()}, secrets),
        body,
    )


def _jsonable(value: object) -> object:
    return (
        value
        if isinstance(value, str | int | float | bool | type(None) | dict | list)
        else str(value)
    )


def _walk(
    connection: Connection,
    settings: Settings,
    limit: int,
    visit: Callable[[DeadLetter, Message], bool | None],
) -> int:
    """Show each message present now (up to ``limit``) to ``visit``, and hand back every one it
    did not take (``visit`` returns True when it acked the message); how many were present."""
    broker.ensure_connected(connection, settings)
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
    reason = headers.get("x-callbridge-reason")
    return DeadLetter(
        position=position,
        key=message_id or f"sha256:{hashlib.sha256(body).hexdigest()[:16]}",
        request_id=headers.get("x-callbridge-request-id"),
        reason=reason,
        size=len(body),
        published_at=_moment(message.properties.get("timestamp")),
        dead_lettered_at=headers.get("x-callbridge-rejected-at"),
        errors=tuple(
            line for line in _errors(headers.get(ERRORS_HEADER)) if line not in (reason or "")
        ),
    )


def _errors(header: object) -> list[str]:
    """The lines of the errors header (JSON, cut at 4000 characters: then shown as text)."""
    if not header:
        return []
    try:
        errors = json.loads(str(header))
    except ValueError:
        return [redact(f"{header} (cut)")]
    return [redact(line) for line in error_lines(errors)] if isinstance(errors, dict) else []


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
        listed = "; ".join(redact(line) for line in problems(verdict))
        return f"intake would refuse it again: {listed or redact(verdict.reason or '')}"
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
