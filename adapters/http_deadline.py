"""A deadline for a whole HTTP call, where ``requests`` only has one per socket operation.

``requests``' read timeout bounds each wait for bytes, not the call: a server that sends one
byte every few seconds, in its headers or its body, holds the caller for ever. So a call runs
inside ``deadline(seconds)``: the connection it sends on registers itself with the call, and
one watchdog thread for the process shuts that connection's socket down if the call is still
running when its time is up. The caller's blocked read then fails at once, as if the server had
hung up, and ``Call.expired`` says why. A socket shut down that way is never used again: urllib3
finds it closed before reusing a pooled connection.

Only sessions from ``session()`` have connections that register; with any other, a call is
bounded by its per-read timeout alone.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.poolmanager
from requests.adapters import HTTPAdapter

_current = threading.local()


class Call:
    """One call under a deadline: the connection it uses, and whether its time ran out."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self._connection: urllib3.connection.HTTPConnection | None = None

    def _cut(self) -> None:
        """The deadline passed (the watchdog's lock is held, so the call cannot finish now)."""
        self.expired = True
        if self._connection is not None:
            _shut_down(self._connection)


class _Watchdog:
    """One thread for every call of the process: it wakes at the earliest deadline of the
    calls running when it went to sleep, so calls that end in time cost it nothing."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._running: set[Call] = set()
        self._wakes_at: float | None = None
        self._thread: threading.Thread | None = None

    def start(self, call: Call) -> None:
        with self._lock:
            self._running.add(call)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="http-deadlines", daemon=True
                )
                self._thread.start()
            elif self._wakes_at is None or call.ends_at < self._wakes_at:
                self._lock.notify()

    def finish(self, call: Call) -> None:
        with self._lock:
            self._running.discard(call)

    def attach(self, call: Call, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            call._connection = connection
            if call.expired:
                _shut_down(connection)

    def _watch(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for call in [call for call in self._running if call.ends_at <= now]:
                    self._running.discard(call)
                    call._cut()
                self._wakes_at = min((call.ends_at for call in self._running), default=None)
                self._lock.wait(None if self._wakes_at is None else self._wakes_at - now)


_WATCHDOG = _Watchdog()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Call]:
    """Run the HTTP call made in the block (on this thread) for at most ``seconds``."""
    call = Call(seconds)
    _current.call = call
    _WATCHDOG.start(call)
    try:
        yield call
    finally:
        _WATCHDOG.finish(call)
        _current.call = None


def session(pool_size: int) -> requests.Session:
    """A session that never retries and whose calls ``deadline`` can cut."""
    adapter = _Adapter(max_retries=0, pool_connections=1, pool_maxsize=pool_size)
    http = requests.Session()
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http


def _shut_down(connection: urllib3.connection.HTTPConnection) -> None:
    """End the connection's socket in both directions, from any thread: a read blocked on it
    returns at once. ``socket.socket.shutdown`` itself, so a TLS socket's state is left to the
    thread using it."""
    sock = getattr(connection, "sock", None)
    sock = getattr(sock, "socket", sock)  # urllib3's TLS-in-TLS wrapper holds the real one
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Registering:
    """A connection that tells the call running on its thread that it carries it."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        call = getattr(_current, "call", None)
        if call is not None:
            _WATCHDOG.attach(call, self)
        super().request(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        call = getattr(_current, "call", None)
        if call is not None and call.expired:  # the deadline passed while connecting
            _shut_down(self)


# Named as urllib3's own, whose names its error messages show.
class HTTPConnection(_Registering, urllib3.connection.HTTPConnection):
    pass


class HTTPSConnection(_Registering, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(HTTPAdapter):
    """Makes its pools (direct, and through an HTTP proxy) of registering connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOLS  # a SOCKS proxy keeps its own
        return manager
