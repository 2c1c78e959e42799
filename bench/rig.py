"""The bench's surroundings: the sandbox platform, queues, databases and worker processes.

Everything runs on 127.0.0.1 against the real RabbitMQ and PostgreSQL on the machine, is named
uniquely per scenario and is removed afterwards. Worker processes are started exactly as the
tests start them (``tests.plugins.services.WorkerProcess``: ``python -m worker run`` with its
environment), and the sandbox runs in a process of its own, so that neither it nor the bench
shares an interpreter (and its GIL) with the process under measurement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import requests
from kombu import Connection

from adapters.topology import contract_queue
from tests.plugins.services import ROOT, Queues, WorkerProcess
from tests.service_urls import POSTGRES_URL, RABBITMQ_URL, database_url
from worker.commands.demo import start_sandbox as start_sandbox_process

# How often the depth of a results queue is read while a burst is being worked off.
DEPTH_POLL_SECONDS = 0.01
STARTUP_TIMEOUT_SECONDS = 60.0
PY_SPY = str(pathlib.Path(sys.executable).with_name("py-spy"))


class BenchError(RuntimeError):
    """A scenario could not be measured (a service missing, a worker that did not keep up)."""


@dataclasses.dataclass
class Sandbox:
    """``python -m sandbox`` in its own process, driven through its ``/_sandbox/`` controls."""

    process: subprocess.Popen
    url: str
    token: str

    def configure(self, **options: object) -> None:
        """Set sandbox options (``latency``, ``report_rows_per_phone``...) from now on."""
        requests.post(f"{self.url}/_sandbox/faults", json=options, timeout=10).raise_for_status()

    def reset(self) -> None:
        """Forget campaigns and received requests, back to zero latency."""
        requests.post(f"{self.url}/_sandbox/reset", timeout=30).raise_for_status()

    def create_calls(self) -> int:
        """How many ``POST /api/campaigns`` the sandbox has received since the last reset."""
        received = requests.get(f"{self.url}/_sandbox/requests", timeout=10).json()
        return sum(1 for call in received if call["path"] == "/api/campaigns")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_sandbox() -> Sandbox:
    token = secrets.token_urlsafe(16)
    try:
        process, url = start_sandbox_process(token)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
    return Sandbox(process, url, token)


class Rig:
    """One bench invocation's services, and the per-scenario resources it hands out.

    Use as a context manager: leaving it stops every process and drops every queue and
    database it made.
    """

    def __init__(self, workdir: pathlib.Path, *, profile_dir: pathlib.Path | None = None):
        self.workdir = workdir
        self.profile_dir = profile_dir
        self.broker_url = RABBITMQ_URL
        self.sandbox: Sandbox | None = None
        self._cleanups: list[Callable[[], None]] = []
        self._processes = 0

    def __enter__(self) -> Rig:
        self._check_services()
        self.sandbox = start_sandbox()
        self._cleanups.append(self.sandbox.stop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        while self._cleanups:
            with contextlib.suppress(Exception):  # tidy up the rest whatever one step did
                self._cleanups.pop()()

    # -- per scenario ----------------------------------------------------------------------

    @contextlib.contextmanager
    def scenario(self) -> Iterator[Scenario]:
        """Fresh queues, a sandbox forgotten back to its defaults; all removed afterwards."""
        self.sandbox.reset()
        prefix = f"cbbench.{uuid.uuid4().hex[:10]}"
        queues = Queues(f"{prefix}.requests", f"{prefix}.results", f"{prefix}.dead")
        with Connection(self.broker_url) as connection:
            for name in dataclasses.astuple(queues):
                contract_queue(name).bind(connection.default_channel).declare()
        scenario = Scenario(self, queues)
        try:
            yield scenario
        except BenchError as exc:
            raise BenchError(f"{exc}\n{scenario.log_tails()}") from None
        finally:
            scenario.close()
            with Connection(self.broker_url) as connection:
                for name in dataclasses.astuple(queues):
                    with contextlib.suppress(Exception):
                        connection.default_channel.queue_delete(name)

    def _check_services(self) -> None:
        try:
            with Connection(self.broker_url, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:  # any failure means the same: not there
            raise BenchError(f"RabbitMQ is not reachable at {self.broker_url}: {exc}") from None
        try:
            psycopg.connect(POSTGRES_URL, connect_timeout=5).close()
        except Exception as exc:
            raise BenchError(f"PostgreSQL is not reachable: {exc}") from None

    def next_name(self, kind: str) -> str:
        """``kind-N``, N counting every process the bench starts: names in starting order."""
        self._processes += 1
        return f"{kind}-{self._processes}"

    def next_log_path(self) -> pathlib.Path:
        return self.workdir / f"{self.next_name('worker')}.log"


class Scenario:
    """The queues, databases and processes of one measurement."""

    def __init__(self, rig: Rig, queues: Queues):
        self.rig = rig
        self.queues = queues
        self.processes: list[WorkerProcess | subprocess.Popen] = []
        self._databases: list[str] = []
        self._profilers: list[subprocess.Popen] = []

    def database_url(self, store: str) -> str:
        """A fresh database of ``store``, ``sqlite`` or ``postgres``."""
        return self.postgres_url() if store == "postgres" else self.sqlite_url()

    def sqlite_url(self) -> str:
        return f"sqlite:///{self.rig.workdir / uuid.uuid4().hex[:12]}.db"

    def postgres_url(self) -> str:
        """A fresh PostgreSQL database, dropped when the scenario ends."""
        name = f"callbridge_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return database_url(name)

    def env(self, **more: str) -> dict[str, str]:
        """The environment of a process of this scenario: its queues and the sandbox."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY")}
        env.update(self.queues.env())
        env.update(
            BROKER_URL=self.rig.broker_url,
            IS74_API_URL=self.rig.sandbox.url,
            IS74_API_TOKEN=self.rig.sandbox.token,
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(more)
        return env

    def start_workers(
        self, env: dict[str, str], count: int = 1, *, wait: bool = True
    ) -> list[WorkerProcess]:
        """``count`` worker processes started together; with ``wait``, returns once each said
        it started (a throughput run starts timing at the queue instead)."""
        workers = [WorkerProcess(env, self.rig.next_log_path()) for _ in range(count)]
        self.processes.extend(workers)
        if self.rig.profile_dir is not None:
            for worker in workers:
                self._profile(worker.pid, worker.log_path.stem)
        for worker in workers if wait else ():
            try:
                worker.wait_for_log('"worker started"', timeout=STARTUP_TIMEOUT_SECONDS)
            except AssertionError as exc:  # the fixture's way of saying so, with the log
                raise BenchError(str(exc)) from None
        return workers

    def start_process(self, args: list[str], env: dict[str, str], *, name: str) -> subprocess.Popen:
        """A process other than the worker (the floor); ``name`` names its profile."""
        process = subprocess.Popen(args, cwd=ROOT, env=env)
        self.processes.append(process)
        if self.rig.profile_dir is not None:
            self._profile(process.pid, name)
        return process

    def _profile(self, pid: int, name: str) -> None:
        """Sample a process with py-spy until it exits, into ``name.txt``: collapsed stacks,
        which speedscope and flamegraph.pl read."""
        self.rig.profile_dir.mkdir(parents=True, exist_ok=True)
        output = self.rig.profile_dir / f"{name}.txt"
        command = [PY_SPY, "record", "--pid", str(pid), "--nonblocking", "--format", "raw"]
        self._profilers.append(
            subprocess.Popen(
                [*command, "--output", str(output)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def log_tails(self, lines: int = 20) -> str:
        """The end of each worker's log, to show why a measurement failed."""
        return "\n".join(
            f"--- {worker.log_path.name}:\n" + "\n".join(worker.log_text().splitlines()[-lines:])
            for worker in self.processes
            if isinstance(worker, WorkerProcess)
        )

    def close(self) -> None:
        for process in self.processes:
            if isinstance(process, WorkerProcess):
                process.stop()
            elif process.poll() is None:
                process.kill()
                process.wait(10)
        for profiler in self._profilers:
            profiler.wait(60)  # it writes its file once the worker has gone
        for name in self._databases:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def steady_rate(broker_url: str, queue: str, count: int, *, timeout: float) -> float:
    """Messages per second arriving on ``queue`` while it fills from 10 % to 90 % of ``count``.

    The first and last tenth are left out, so process start-up and the draining tail do not
    count; the queue's depth is read every ``DEPTH_POLL_SECONDS`` (a passive declare, which
    costs the processes under measurement nothing).
    """
    low, high = max(1, count // 10), max(2, count * 9 // 10)
    marks: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    with Connection(broker_url) as connection:
        channel = connection.default_channel
        while high not in marks:
            depth = channel.queue_declare(queue, passive=True).message_count
            now = time.perf_counter()
            for mark in (low, high):
                if depth >= mark:
                    marks.setdefault(mark, now)
            if time.monotonic() > deadline:
                raise BenchError(f"{queue} reached {depth} of {count} messages in {timeout:g} s")
            time.sleep(DEPTH_POLL_SECONDS)
    return (high - low) / (marks[high] - marks[low])
