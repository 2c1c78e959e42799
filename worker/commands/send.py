"""``callbridge send``: publish a call request the way the CRM does.

Useful to a CRM developer trying the contract, to an operator replaying a request, and to the
demo. The queues are declared first, so the message has somewhere to go even before the first
worker ever started.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import uuid

from kombu import Producer

from adapters import broker
from adapters.broker import CONFIRM_TIMEOUT_SECONDS
from adapters.config import Settings
from adapters.topology import declare


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


def request_id_of(body: bytes) -> str | None:
    """The request_id of a body, for printing; None when the body is not a request."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("request_id") if isinstance(data, dict) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the request body: a JSON file, or - to read stdin")
    parser.add_argument("--reply-to", help="queue for this request's result events")
    parser.add_argument("--correlation-id", help="copied to every result event")


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    body = sys.stdin.buffer.read() if args.file == "-" else pathlib.Path(args.file).read_bytes()
    message_id = publish_request(
        settings, body, reply_to=args.reply_to, correlation_id=args.correlation_id
    )
    print(
        f"published request {request_id_of(body) or '(no request_id)'} to "
        f"{settings.call_requests_queue} (message_id {message_id})"
    )
    return 0
