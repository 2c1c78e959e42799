"""Fixtures for the real services: RabbitMQ, PostgreSQL, and worker processes that use them.

Every run gets its own queue names and its own PostgreSQL database, so runs (and tests) never
see each other's messages or rows. A service that is not there fails the test, unless the
person running the tests asked to skip such tests with ``CALLBRIDGE_TEST_SKIP_MISSING=1``.

Each test is marked with the services it needs (``-m "not postgres"`` leaves out every test
that needs PostgreSQL), from the fixtures it uses: a test that needs a service through a
fixture it does not name (``request.getfixturevalue``) fails, so no such test goes unmarked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import requests
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from adapters.broker import raw_body
from adapters.topology import contract_queue
from tests.service_urls import (
    POSTGRES_URL,
    RABBITMQ_URL,
    database_url,
    postgres_problem,
    rabbitmq_problem,
)
from tests.waiting import eventually

T = TypeVar("T")

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKIP_MISSING = "CALLBRIDGE_TEST_SKIP_MISSING"
# The fixture at the root of every use of a service, and the marker a test using it gets.
SERVICE_MARKERS = {
    "rabbitmq_server": "rabbitmq",
    "private_rabbitmq": "rabbitmq",
    "postgres_server": "postgres",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rabbitmq: needs the RabbitMQ server on the machine")
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server on the machine")


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark each test with the services its fixtures need (before ``-m`` selects)."""
    for fixture, marker in SERVICE_MARKERS.items():
        if fixture in getattr(item, "fixturenames", ()):
            item.add_marker(marker)


def missing_service(problem: str) -> None:
    """Fail (or skip, when asked) a test whose service is not there, saying why."""
    message = f"{problem}; scripts/ensure-services (run by scripts/test) sets it up"
    if os.environ.get(SKIP_MISSING) == "1":
        pytest.skip(f"{message} ({SKIP_MISSING}=1)")
    pytest.fail(f"{message}, or set {SKIP_MISSING}=1 to skip the tests that need it")


def _require_marker(request: pytest.FixtureRequest, marker: str) -> None:
    """A test reaching a service through a fixture it does not name escapes the marking."""
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(
            f"{request.node.nodeid} needs {marker} but is not marked so: name the fixture among "
            f"its arguments (or mark the parameter that needs it)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def rabbitmq_server() -> str:
    if problem := rabbitmq_problem():
        missing_service(problem)
    return RABBITMQ_URL


@pytest.fixture
def rabbitmq_url(rabbitmq_server: str, request: pytest.FixtureRequest) -> str:
    """The shared RabbitMQ's URL; queue names are the test's own (``queues``)."""
    _require_marker(request, "rabbitmq")
    return rabbitmq_server


@pytest.fixture(scope="session")
def postgres_server() -> str:
    if problem := postgres_problem():
        missing_service(problem)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards (SQLAlchemy URL, psycopg 3 driver)."""
    import psycopg

    _require_marker(request, "postgres")
    name = f"callbridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite:///{tmp_path / 'callbridge.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store in turn: a test using this runs on SQLite, then on a fresh PostgreSQL
    database (that run marked ``postgres``)."""
    return request.getfixturevalue(f"{request.param}_url")


@dataclasses.dataclass(frozen=True)
class Queues:
    requests: str
    results: str
    dead: str

    def env(self) -> dict[str, str]:
        return {
            "CALL_REQUESTS_QUEUE": self.requests,
            "CALL_RESULTS_QUEUE": self.results,
            "DEAD_LETTER_QUEUE": self.dead,
        }


@pytest.fixture
def queues(rabbitmq_url: str) -> Iterator[Queues]:
    """Queue names of this test alone; deleted afterwards."""
    prefix = f"cbtest.{uuid.uuid4().hex[:10]}"
    names = Queues(f"{prefix}.requests", f"{prefix}.results", f"{prefix}.dead")
    with Connection(rabbitmq_url) as connection:
        for name in dataclasses.astuple(names):
            contract_queue(name).bind(connection.default_channel).declare()
    yield names
    with Connection(rabbitmq_url) as connection:
        channel = connection.default_channel
        for name in dataclasses.astuple(names):
            with contextlib.suppress(Exception):
                channel.queue_delete(name)


def callbridge(
    *args: str, env: dict[str, str], cwd: pathlib.Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``callbridge ARGS`` run as an operator runs it: a process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class WorkerProcess:
    """A real `callbridge run` subprocess, its log in a file the test can read."""

    def __init__(self, env: dict[str, str], log_path: pathlib.Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, *, count: int = 1, timeout: float = 30) -> None:
        """Until ``needle`` is in the log ``count`` times; fails at once if the worker exits."""

        def logged() -> bool:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"worker exited ({code}):\n{self.log_text()}")
            return self.log_text().count(needle) >= count

        eventually(
            logged,
            timeout=timeout,
            what=lambda: f"{needle!r} {count} time(s) in the worker's log:\n{self.log_text()}",
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 40) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def worker_env(
    rabbitmq_url: str, queues: Queues, sandbox_token: str
) -> Callable[..., dict[str, str]]:
    """``worker_env(api_url, database_url, **more)``: the environment of a worker subprocess on
    the test's broker and queues, with the sandbox's token, the given platform and database.

    Calling hours are off: most tests' windows are the next minutes, at whatever hour the tests
    run. Tests of calling hours set ``CALLING_HOURS``.
    """

    def make(api_url: str, database_url: str, **more: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY")}
        env.update(queues.env())
        env.update(
            BROKER_URL=rabbitmq_url,
            DATABASE_URL=database_url,
            IS74_API_URL=api_url,
            IS74_API_TOKEN=sandbox_token,
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            HTTP_TIMEOUT_SECONDS="5",
            PYTHONUNBUFFERED="1",
            CALLING_HOURS="off",
        )
        env.update(more)
        return env

    return make


@pytest.fixture
def start_worker(tmp_path: pathlib.Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        worker.wait_for_log('"worker started"' if env.get("LOG_FORMAT") == "json" else "started")
        return worker

    yield start
    for worker in started:
        worker.stop()


class QueueReader:
    """Reads messages off a queue, as the CRM would: result events decoded from JSON."""

    def __init__(self, url: str, queue: str, decode: Callable[[bytes], Any] = json.loads):
        self.url = url
        self.queue = queue
        self.decode = decode
        self.seen: list[tuple[Any, dict]] = []  # (body, properties)

    def poll(self) -> list[tuple[dict, dict]]:
        fresh = []
        with Connection(self.url) as connection:
            channel = connection.default_channel
            while (message := channel.basic_get(self.queue, no_ack=True)) is not None:
                properties = dict(message.properties)
                properties["headers"] = message.headers
                body = raw_body(message.body, properties.get("content_encoding"))
                fresh.append((self.decode(body), properties))
        self.seen.extend(fresh)
        return fresh

    def bodies(self) -> list[Any]:
        return [body for body, _ in self.seen]

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 30) -> list[Any]:
        """Read until the messages read so far satisfy ``predicate``; all of them."""

        def read() -> list[Any] | None:
            self.poll()
            return self.bodies() if predicate(self.bodies()) else None

        return eventually(
            read,
            timeout=timeout,
            interval=0.1,
            what=lambda: (
                f"messages on {self.queue}; {len(self.seen)} read so far, the last ones: "
                f"{self.bodies()[-3:]}"
            ),
        )


@pytest.fixture
def full_reply_queue(rabbitmq_url: str, queues: Queues) -> Iterator[str]:
    """A reply queue that refuses every message: an event for it stays in the outbox."""
    name = f"{queues.results}.full"
    with Connection(rabbitmq_url) as connection:
        connection.default_channel.queue_declare(
            name,
            durable=True,
            auto_delete=False,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
        )
    yield name
    with Connection(rabbitmq_url) as connection:
        connection.default_channel.queue_delete(name)


@pytest.fixture
def results_reader(rabbitmq_url: str, queues: Queues) -> QueueReader:
    return QueueReader(rabbitmq_url, queues.results)


@pytest.fixture
def dead_letter_reader(rabbitmq_url: str, queues: Queues) -> QueueReader:
    return QueueReader(rabbitmq_url, queues.dead, decode=bytes)


def at_rest(database_url: str) -> bool:
    """Nothing left in the store that could still send or publish: no campaign waiting for its
    creation or in it, and every event published. Once true, a later event or create call
    could only come from a request settled wrongly, so "nothing more happened" holds for good
    and not only for as long as a test would have slept."""
    from adapters.store import IN_FLIGHT, PENDING_CREATE, open_store

    store = open_store(database_url, pool_size=1)
    try:
        stats = store.stats()
    finally:
        store.engine.dispose()
    busy = {*PENDING_CREATE, *IN_FLIGHT} & {
        state for state, count in stats["campaigns_by_state"].items() if count
    }
    return not busy and stats["outbox_backlog"] == 0


def as_if_due(
    database_url: str, request_id: str, *, window_ended_ago: dt.timedelta | None = None
) -> None:
    """Time passes for one request: the reports of its campaigns are due now (and their windows
    ended long ago)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    values = {"next_attempt_at": now}
    if window_ended_ago is not None:
        end = now - window_ended_ago
        values.update(window_start=end - dt.timedelta(hours=8), window_end=end)
    import sqlalchemy as sa

    from adapters.store import open_store
    from adapters.store.tables import campaigns_table

    store = open_store(database_url)
    with store.transaction() as conn:
        conn.execute(
            sa.update(campaigns_table)
            .where(campaigns_table.c.request_id == request_id)
            .values(**values)
        )
    store.engine.dispose()


def wait_until_at_rest(database_url: str, timeout: float = 30) -> None:
    eventually(
        lambda: at_rest(database_url),
        timeout=timeout,
        interval=0.1,
        what="every request settled and every event published",
    )


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nothing else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def on_a_free_port(start: Callable[[int], T], attempts: int = 5) -> T:
    """``start(port)`` on a port that was free a moment ago; on another if it was taken since
    (``start`` raising an error that says the address is in use)."""
    for _ in range(attempts - 1):
        try:
            return start(_port_free_now())
        except (OSError, AssertionError) as exc:
            taken = getattr(exc, "errno", None) == errno.EADDRINUSE
            if not (taken or "Address already in use" in str(exc)):
                raise
    return start(_port_free_now())


def _port_free_now() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample a metrics server on this host shows: ``(name, sorted labels)`` -> value."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(2, 5))
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
