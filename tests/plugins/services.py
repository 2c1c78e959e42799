"""Fixtures for the real services: RabbitMQ, PostgreSQL, and worker processes that use them.

Every run gets its own queue names and its own PostgreSQL database, so runs (and tests) never
see each other's messages or rows. A service that is not there fails the test under CI=true
and skips it, loudly, elsewhere (`scripts/test` starts them first, so it should not happen).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from adapters.broker import raw_body
from adapters.topology import contract_queue

ROOT = pathlib.Path(__file__).resolve().parents[2]
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _missing(service: str, why: str) -> None:
    message = f"{service} is not reachable ({why}); run scripts/test, which starts it"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # any failure means the same: not there
        _missing("RabbitMQ", type(exc).__name__)
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    import psycopg

    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=5).close()
    except Exception as exc:
        _missing("PostgreSQL", type(exc).__name__)
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards (SQLAlchemy URL, psycopg 3 driver)."""
    import psycopg

    name = f"callbridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = postgres_admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite:///{tmp_path / 'callbridge.db'}"


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

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if self.process.poll() is not None:
                code = self.process.returncode
                raise AssertionError(f"worker exited ({code}):\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} in the worker's log:\n{self.log_text()}")
            time.sleep(0.05)

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
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            events = self.bodies()
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events so far: {events}")
            time.sleep(0.1)


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


def free_port() -> int:
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
