"""``callbridge send``: publish a call request the way the CRM does.

Useful to a CRM developer trying the contract, to an operator replaying a request, and to the
demo. The body is checked first with intake's own decoding and schema, under the worker's
settings, and refused with one line per error: a request the worker would reject is not
published (``--raw`` publishes it anyway, to see the worker reject it, and says that intake will
refuse it). The queues are declared first, so the message has somewhere to go even before the
first worker ever started.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import uuid

from kombu import Producer

from adapters import broker
from adapters.broker import CONFIRM_TIMEOUT_SECONDS, Delivery
from adapters.config import BROKER, QUEUES, Settings
from adapters.logs import redact
from adapters.store import utcnow
from adapters.topology import declare
from handlers.accept import problems, verdict_on
from worker.commands import UsageError

USES = (BROKER, QUEUES)
JSON = "application/json"
# RabbitMQ refuses larger messages whatever its settings.
RAW_MAX_BYTES = 512 * 1024 * 1024


def publish_request(
    settings: Settings,
    body: bytes,
    *,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    content_type: str | None = JSON,
    queue: str | None = None,
) -> str:
    """Publish one raw body to the requests queue (persistent, confirmed); its message id."""
    message_id = str(uuid.uuid4())
    properties = {"message_id": message_id}
    if reply_to:
        properties["reply_to"] = reply_to
    if correlation_id:
        properties["correlation_id"] = correlation_id
    with broker.connect(settings) as connection:
        broker.ensure_connected(connection, settings)
        channel = connection.default_channel
        declare(channel, settings)
        Producer(channel).publish(
            body,
            exchange="",
            routing_key=queue or settings.call_requests_queue,
            delivery_mode=2,
            content_type=content_type or "application/octet-stream",
            content_encoding="utf-8" if content_type else "binary",
            confirm_timeout=CONFIRM_TIMEOUT_SECONDS,
            **properties,
        )
    return message_id


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the request body: a JSON file, or - to read stdin")
    parser.add_argument("--reply-to", help="queue for this request's result events")
    parser.add_argument("--correlation-id", help="copied to every result event")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="publish the body unchecked, even one the worker will reject and dead-letter",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    limit, limit_name = (
        (RAW_MAX_BYTES, "the broker's limit") if args.raw else (settings.max_message_bytes, None)
    )
    body = read_body(args.file, limit=limit, limit_name=limit_name or "MAX_MESSAGE_BYTES")
    delivery = Delivery(
        body=body, content_type=JSON, correlation_id=args.correlation_id, reply_to=args.reply_to
    )
    verdict = verdict_on(delivery, settings=settings, now=utcnow())
    refused = [redact(line) for line in problems(verdict) or [verdict.reason or ""]]
    if verdict.outcome == "rejected" and not args.raw:
        shown = "\n".join(f"{args.file}: {line}" for line in refused)
        raise UsageError(f"{shown}\n{args.file}: not published (--raw publishes it anyway)")
    message_id = publish_request(
        settings, body, reply_to=args.reply_to, correlation_id=args.correlation_id
    )
    print(
        f"published request {verdict.request_id or '(no request_id)'} to "
        f"{settings.call_requests_queue} (message_id {message_id})"
        + (" unchecked" if args.raw else "")
    )
    if verdict.outcome == "rejected":
        print(f"intake will refuse it: {'; '.join(refused)}")
    return 0


def read_body(name: str, *, limit: int, limit_name: str = "MAX_MESSAGE_BYTES") -> bytes:
    """The file's bytes (stdin for ``-``); UsageError when it cannot be read or is over
    ``limit`` (intake dead-letters a larger message)."""
    try:
        if name == "-":
            body = sys.stdin.buffer.read(limit + 1)
        else:
            with pathlib.Path(name).open("rb") as file:
                body = file.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(body) > limit:
        raise UsageError(f"{name} is over {limit_name} ({limit} bytes)")
    return body
