"""Broker faults are clear and stoppable: a real worker process against a broker that refuses
its login or virtual host, one that is not there at all, and one it idles with for a while."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.parse

import pytest

from adapters.config import load_settings
from adapters.store import open_store, utcnow
from handlers.results import result
from schemas.events import campaign_failed
from tests.builders import call_request, publish
from tests.plugins.services import callbridge
from tests.waiting import eventually

pytestmark = [pytest.mark.rabbitmq]

PASSWORD = "n0t-the-Passw0rd"
STOP_SECONDS = 5


def broker_url(rabbitmq_url: str, *, password: str | None = None, vhost: str | None = None) -> str:
    parts = urllib.parse.urlsplit(rabbitmq_url)
    user = parts.username or "guest"
    netloc = f"{user}:{password or parts.password or 'guest'}@{parts.hostname}:{parts.port}"
    path = "/" + urllib.parse.quote(vhost, safe="") if vhost is not None else parts.path
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


def stops_within(worker, seconds: float, signum: int = signal.SIGTERM) -> int:
    started = time.monotonic()
    worker.process.send_signal(signum)
    try:
        code = worker.process.wait(seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker ignored the signal for {seconds} s:\n{worker.log_text()[-3000:]}")
    assert time.monotonic() - started < seconds
    return code


@pytest.mark.parametrize(
    ("fault", "line"),
    [
        ("password", "refused the login of user 'guest'"),
        ("vhost", "refused the virtual host 'no-such-vhost'"),
    ],
)
def test_a_refused_login_or_vhost_is_one_line_per_try_and_a_signal_stops_it(
    fault, line, make_sandbox, worker_env, start_worker, rabbitmq_url, sqlite_url
):
    url = (
        broker_url(rabbitmq_url, password=PASSWORD)
        if fault == "password"
        else broker_url(rabbitmq_url, vhost="no-such-vhost")
    )
    worker = start_worker(worker_env(make_sandbox().url, sqlite_url, BROKER_URL=url))
    worker.wait_for_log(line)
    eventually(
        lambda: worker.log_text().count(line) >= 3,
        what="the tries to go on, with backoff",
        timeout=20,
    )

    log = worker.log_text()
    assert log.count(line) <= 4, "one line per try, tries backing off"
    assert "Traceback" not in log
    assert PASSWORD not in log
    lines = [entry for entry in log.splitlines() if line in entry]
    assert all("broker 127.0.0.1:" in entry for entry in lines), "each line names the host"
    assert stops_within(worker, STOP_SECONDS) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_broker_is_unreachable_ends_the_worker_in_seconds(
    signum, make_sandbox, worker_env, start_worker, queues, sqlite_url, refused_port
):
    """Health meanwhile: an event waits, and the line says that nothing went out at all."""
    store = open_store(sqlite_url)
    store.create_schema()
    waiting = campaign_failed(
        request_id="waiting", status=500, message="boom", outcome="unknown", occurred_at=utcnow()
    )
    with store.transaction() as conn:
        store.add_event(
            conn, result(load_settings(queues.env()), waiting, correlation_id=None, reply_to=None)
        )
    store.engine.dispose()
    closed = f"amqp://guest:guest@127.0.0.1:{refused_port}//"
    env = worker_env(make_sandbox().url, sqlite_url, BROKER_URL=closed)
    worker = start_worker(env)
    worker.wait_for_log('"level": "WARNING", "logger": "callbridge.consumer"')  # a try failed
    health = eventually(
        lambda: (
            (found := callbridge("health", "--max-outbox-age", "1", env=env)).returncode == 1
            and found
        ),
        what="health to fail on the event waiting past a second",
    )
    assert "none published ever: the broker is unreachable" in health.stdout
    assert stops_within(worker, STOP_SECONDS, signum) == 0


def test_idle_connections_are_kept_alive_by_heartbeats(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    """With 5-second heartbeats, RabbitMQ drops a connection that stays silent for 5 to 10 s;
    both of the worker's connections idle longer than that between two requests."""
    worker = start_worker(worker_env(make_sandbox().url, sqlite_url, BROKER_HEARTBEAT_SECONDS="5"))
    publish(rabbitmq_url, queues.requests, call_request("before-idle"))
    results_reader.wait_for(lambda events: len(events) == 1)
    time.sleep(15)  # idle: the state under test is nothing happening
    publish(rabbitmq_url, queues.requests, call_request("after-idle"))
    results_reader.wait_for(lambda events: len(events) == 2)
    log = worker.log_text()
    assert "trying again" not in log and "lost" not in log, log[-3000:]
