"""``callbridge send``: publish a call request the way the CRM does.

Useful to a CRM developer trying the contract, to an operator replaying a request, and to the
demo. The queues are declared first, so the message has somewhere to go even before the first
worker ever started. The body goes as it is, whatever it holds (a developer may mean to send a
bad one); the command reads it with intake's own checks and says when intake will refuse it.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import uuid

from kombu import Producer

from adapters import broker
from adapters.broker import CONFIRM_TIMEOUT_SECONDS, Delivery
from adapters.config import Settings
from adapters.logs import redact
from adapters.store import utcnow
from adapters.topology import declare
from handlers.accept import verdict_on


def publish_request(
    settings: Settings,
    body: bytes,
    *,
    reply_to: str | None = None,
    correlation_id: str | None = None,
    content_type: str | None = "application/json",
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
        connection.ensure_connection(max_retries=3)
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


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    body = sys.stdin.buffer.read() if args.file == "-" else pathlib.Path(args.file).read_bytes()
    message_id = publish_request(
        settings, body, reply_to=args.reply_to, correlation_id=args.correlation_id
    )
    verdict = verdict_on(
        Delivery(
            body=body,
            content_type="application/json",
            correlation_id=args.correlation_id,
            reply_to=args.reply_to,
            message_id=message_id,
        ),
        settings=settings,
        now=utcnow(),
    )
    print(
        f"published request {verdict.request_id or '(no request_id)'} to "
        f"{settings.call_requests_queue} (message_id {message_id})"
    )
    if verdict.outcome == "rejected":
        print(f"intake will refuse it: {redact(verdict.reason or '')}")
    return 0
