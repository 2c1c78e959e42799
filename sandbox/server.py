"""The sandbox's HTTP side: routes requests to the platform API and carries out its answers.

Stdlib only (``ThreadingHTTPServer``), HTTP/1.1 with keep-alive so a client's pooled
connection is reused, as it would be against the real platform. Every call is logged (logger
``callbridge.sandbox``, INFO): method, path, status, and the campaign it created or reported on,
so that after a ``drop-after-create`` the log names the campaign the client never heard of.

    POST /api/campaigns                          create a campaign
    POST /api/analytics/{project_id}/report      its dialog results
    GET  /_sandbox/campaigns                     the campaigns created (no auth)
    GET  /_sandbox/campaigns/{id}                one of them, or 404
    GET  /_sandbox/requests                      the requests received: method, path, status,
                                                 received_at (seconds since the epoch),
                                                 campaign id
    GET  /_sandbox/faults                        the options in force and the pending faults
    POST /_sandbox/faults                        change options: {"create_faults": ["503"], ...}
    POST /_sandbox/reset                         forget everything, restore the start options
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox.api import (
    FIRST_CAMPAIGN_ID,
    Answer,
    PlatformApi,
    ReceivedRequest,
    StoredCampaign,
    json_answer,
    load_json,
)

log = logging.getLogger("callbridge.sandbox")

# An idle keep-alive connection is closed after this long, so abandoned clients free their thread.
IDLE_TIMEOUT_SECONDS = 60.0
# How quickly ``stop`` is noticed by the serving thread.
SHUTDOWN_POLL_SECONDS = 0.02
# What an endless answer repeats.
ENDLESS_PIECE = b"0," * 32 * 1024
_REPORT_PATH = re.compile(r"/api/analytics/(?P<project_id>[0-9]{1,18})/report")
_CAMPAIGN_PATH = re.compile(r"campaigns/(?P<campaign_id>[0-9]{1,18})")


class SandboxServer:
    """The platform stand-in on a local port, served from a background thread.

    ``options`` are those of the control endpoint ``POST /_sandbox/faults``: ``latency``,
    ``create_faults``, ``report_faults``, ``report_missing_every``, ``report_rows_per_phone``,
    ``report_phone_format`` and ``report_phone_field``; a bad one raises ValueError here. And
    ``auth_header``: the header that must carry ``Bearer <token>`` (``Authorization``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str,
        first_campaign_id: int = FIRST_CAMPAIGN_ID,
        **options: Any,
    ) -> None:
        self.api = PlatformApi(token=token, first_campaign_id=first_campaign_id, **options)
        self._address = (host, port)
        self._http: _HTTPServer | None = None

    def start(self) -> SandboxServer:
        self._http = _HTTPServer(self._address, self.api)
        threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="sandbox-http",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        """Stop listening and hang up on every open connection, so clients see it is gone."""
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        self._http.hang_up_all()
        self._http = None

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def campaigns(self) -> list[StoredCampaign]:
        """A snapshot of the campaigns created, oldest first."""
        return self.api.campaigns

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received (latest 100,000), oldest first."""
        return self.api.received

    def set_token(self, token: str) -> None:
        self.api.set_token(token)

    def set_faults(self, **options: Any) -> None:
        self.api.set_faults(**options)

    def reset(self) -> None:
        self.api.reset()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: PlatformApi) -> None:
        self.api = api
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse DNS lookup of the host, which can stall."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def hang_up_all(self) -> None:
        with self._open_lock:
            connections, self._open = self._open, set()
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer is ordinary here; keep it out of stderr."""
        log.debug("sandbox connection ended with an error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes; don't wait 40 ms
    server_version = "is74-sandbox/1"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        received_at = time.time()
        path = self.path.split("?", 1)[0]
        try:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        except ValueError:
            answer = json_answer(400, {"message": "bad Content-Length"})
        else:
            answer = self._route(path, raw)
        self.server.api.record(self.command, path, answer.status, received_at, answer.campaign_id)
        campaign = "" if answer.campaign_id is None else f" campaign {answer.campaign_id}"
        log.info("%s %s -> %s%s", self.command, path, answer.status or "hung up", campaign)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.status is None:
            self.close_connection = True
        else:
            self._send(answer)

    def _route(self, path: str, raw: bytes) -> Answer:
        api = self.server.api
        post = self.command == "POST"
        if post and path == "/api/campaigns":
            return api.create_campaign(self.headers, raw)
        if post and (match := _REPORT_PATH.fullmatch(path)):
            return api.report(int(match["project_id"]), self.headers, raw)
        if path.startswith("/_sandbox/"):
            return self._control(path.removeprefix("/_sandbox/"), raw)
        return json_answer(404, {"message": "not found"})

    def _control(self, name: str, raw: bytes) -> Answer:
        api = self.server.api
        route = (self.command, name)
        if route == ("GET", "campaigns"):
            return json_answer(200, [campaign.as_json() for campaign in api.campaigns])
        if self.command == "GET" and (match := _CAMPAIGN_PATH.fullmatch(name)):
            campaign = api.campaign(int(match["campaign_id"]))
            if campaign is None:
                return json_answer(404, {"message": f"no campaign {match['campaign_id']}"})
            return json_answer(200, campaign.as_json())
        if route == ("GET", "requests"):
            return json_answer(200, [vars(received) for received in api.received])
        if route == ("GET", "faults"):
            return json_answer(200, api.options_json())
        if route == ("POST", "faults"):
            return self._set_faults(raw)
        if route == ("POST", "reset"):
            api.reset()
            return json_answer(200, api.options_json())
        return json_answer(404, {"message": "not found"})

    def _set_faults(self, raw: bytes) -> Answer:
        api = self.server.api
        try:
            options = load_json(raw)
            if not isinstance(options, dict):
                raise ValueError("the options must be a JSON object")
            api.set_faults(**options)
        except ValueError as exc:
            return json_answer(422, {"message": str(exc)})
        return json_answer(200, api.options_json())

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        if answer.endless:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            self._send_for_ever()
            return
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if not answer.drip:
            self.wfile.write(answer.body)
            return
        for index in range(len(answer.body)):
            time.sleep(answer.drip)
            self.wfile.write(answer.body[index : index + 1])

    def _send_for_ever(self) -> None:
        """A JSON array that never closes, until the client (or ``stop``) hangs up: writing
        then fails, which ends this thread's request."""
        self.wfile.write(b"1\r\n[\r\n")
        chunk = b"%x\r\n%s\r\n" % (len(ENDLESS_PIECE), ENDLESS_PIECE)
        while True:
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        """http.server's own lines go to the debug log; ``_serve`` logs each request once."""
        log.debug(format, *args)
