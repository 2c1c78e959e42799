"""A local stand-in for Sentry's ingestion endpoint, to test error reports end to end.

The SDK is pointed at ``sentry_server.dsn`` (``http://<key>@127.0.0.1:PORT/1``) and posts its
envelopes to ``/api/1/envelope/``; the server keeps each decompressed body as it arrived and
parses it, so a test can check both the events' content and that some text never left the
process at all.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

ENVELOPE_PATH = re.compile(r"^/api/(?P<project>\d+)/envelope/$")
PUBLIC_KEY = "8c1d6e0f5a2b4c3d9e7f1a0b2c4d6e8f"  # the shape of a real DSN key


@dataclasses.dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type"))

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclasses.dataclass(frozen=True)
class Envelope:
    headers: dict[str, Any]
    items: list[Item]


def parse_envelope(body: bytes) -> Envelope:
    """Sentry's envelope format: a header line, then per item a header line and its payload
    (``length`` bytes when the header gives a length, else up to the next newline)."""
    header_line, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_headers = json.loads(item_line)
        length = item_headers.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        items.append(Item(item_headers, payload))
    return Envelope(json.loads(header_line), items)


@dataclasses.dataclass
class SentryServer:
    port: int
    bodies: list[bytes] = dataclasses.field(default_factory=list)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/1"

    @property
    def raw(self) -> bytes:
        """Every body received, decompressed, joined: for "this never left" assertions."""
        with self.lock:
            return b"\n".join(self.bodies)

    def envelopes(self) -> list[Envelope]:
        with self.lock:
            return [parse_envelope(body) for body in self.bodies]

    def events(self) -> list[dict[str, Any]]:
        return [
            item.json()
            for envelope in self.envelopes()
            for item in envelope.items
            if item.type == "event"
        ]


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _handler_for(server: SentryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not ENVELOPE_PATH.match(self.path):
                self.send_error(404)
                return
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = _decompress(raw, self.headers.get("Content-Encoding", "").lower())
            except ValueError:
                self.send_error(415)
                return
            with server.lock:
                server.bodies.append(body)
            reply = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test output is not the place for access logs."""

    return Handler


@pytest.fixture
def sentry_server() -> Iterator[SentryServer]:
    """A running fake Sentry; its DSN is ``sentry_server.dsn``."""
    state = SentryServer(port=0)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, name="fake-sentry", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
