"""Platform answers no client should trust — endless, dripping, out of range — each end in
their documented outcome, and the requests behind them flow on: a real worker on the real
RabbitMQ, the sandbox injecting the answer, ``callbridge health`` asked meanwhile.
"""

from __future__ import annotations

import collections
import json
import pathlib
import time

import pytest

from tests.builders import call_request, publish
from tests.plugins.services import QueueReader, WorkerProcess, callbridge
from tests.waiting import eventually

pytestmark = [pytest.mark.rabbitmq]

FOLLOWERS = 3


def outcomes(events: list[dict]) -> dict[str, dict]:
    """The terminal event of each request (its campaign.created or campaign.failed)."""
    return {
        e["request_id"]: e for e in events if e["type"] in ("campaign.created", "campaign.failed")
    }


def send_hostile_then_valid(
    worker: WorkerProcess, rabbitmq_url: str, queue: str, prefix: str
) -> list[str]:
    """The request that meets the hostile answer (once it is being sent), then valid ones
    behind it; their ids."""
    ids = [f"{prefix}-hostile", *(f"{prefix}-after-{n}" for n in range(FOLLOWERS))]
    publish(rabbitmq_url, queue, call_request(ids[0], name=f"Hostile {ids[0]}"))
    wait_for_sending(worker, ids[0])
    for request_id in ids[1:]:
        publish(rabbitmq_url, queue, call_request(request_id, name=f"Hostile {request_id}"))
    return ids


def wait_for_sending(worker: WorkerProcess, request_id: str, timeout: float = 20) -> None:
    eventually(
        lambda: any(
            entry.get("message") == "sending" and entry.get("request_id") == request_id
            for entry in log_entries(worker)
        ),
        what=lambda: f"{request_id} being sent:\n{worker.log_text()}",
        timeout=timeout,
    )


def log_entries(worker: WorkerProcess) -> list[dict]:
    return [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]


def assert_each_ends_normally(
    results_reader: QueueReader, ids: list[str], sandbox, *, timeout: float
) -> dict[str, dict]:
    """The followers are created, each once; the first ends unknown, never sent again."""
    ended = outcomes(results_reader.wait_for(lambda e: set(outcomes(e)) >= set(ids), timeout))
    hostile, *followers = ids
    assert (ended[hostile]["type"], ended[hostile]["outcome"]) == ("campaign.failed", "unknown")
    assert {ended[request_id]["type"] for request_id in followers} == {"campaign.created"}
    per_request = collections.Counter(
        campaign.body["campaign"]["name"].removeprefix("Hostile ") for campaign in sandbox.campaigns
    )
    assert per_request == dict.fromkeys(ids, 1), "a request was sent twice"
    return ended


def healthy(env: dict[str, str]) -> str:
    done = callbridge("health", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def peak_rss_mb(pid: int) -> float:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


def wait_bounded(worker: WorkerProcess, results_reader: QueueReader, ids, *, rss_mb, timeout):
    """Wait for every request's outcome, failing at once if the worker outgrows ``rss_mb``."""

    def every_outcome_within_memory() -> bool:
        assert peak_rss_mb(worker.pid) < rss_mb, f"the worker grew past {rss_mb} MB"
        results_reader.poll()
        return set(outcomes(results_reader.bodies())) >= set(ids)

    eventually(
        every_outcome_within_memory,
        what=lambda: f"every outcome: {results_reader.bodies()}",
        timeout=timeout,
        interval=0.2,
    )


def test_an_endless_answer_ends_unknown_and_the_workers_memory_stays_bounded(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    sandbox = make_sandbox(create_faults=["endless"])
    env = worker_env(sandbox.url, sqlite_url)  # the default cap: 64 MiB
    worker = start_worker(env)

    ids = send_hostile_then_valid(worker, rabbitmq_url, queues.requests, "endless")
    wait_bounded(worker, results_reader, ids, rss_mb=250, timeout=60)  # 125 MB measured

    ended = assert_each_ends_normally(results_reader, ids, sandbox, timeout=5)
    assert "larger than 67108864 bytes" in ended[ids[0]]["error"]["message"]
    healthy(env)


def test_a_dripping_answer_ends_at_the_deadline_and_sigterm_does_not_wait_longer(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    sandbox = make_sandbox(create_faults=["drip:1"])
    env = worker_env(sandbox.url, sqlite_url, HTTP_CALL_DEADLINE_SECONDS="3")
    worker = start_worker(env)

    ids = send_hostile_then_valid(worker, rabbitmq_url, queues.requests, "drip")
    healthy(env)
    ended = assert_each_ends_normally(results_reader, ids, sandbox, timeout=20)
    assert "no whole answer within 3 s" in ended[ids[0]]["error"]["message"]
    healthy(env)

    sandbox.set_faults(create_faults=["drip:1"])
    publish(rabbitmq_url, queues.requests, call_request("drip-at-sigterm"))
    wait_for_sending(worker, "drip-at-sigterm")
    started = time.monotonic()
    assert worker.terminate(timeout=30) == 0
    assert time.monotonic() - started < 3 + 2.5, "SIGTERM waited past the call's deadline"
    last = outcomes(results_reader.wait_for(lambda e: "drip-at-sigterm" in outcomes(e)))
    assert (last["drip-at-sigterm"]["type"], last["drip-at-sigterm"]["outcome"]) == (
        "campaign.failed",
        "unknown",
    )


def test_a_campaign_id_past_64_bits_ends_unknown_with_the_id_in_the_log(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, store_url
):
    sandbox = make_sandbox(create_faults=[f"id:{2**63}"])
    env = worker_env(sandbox.url, store_url)
    worker = start_worker(env)

    ids = send_hostile_then_valid(worker, rabbitmq_url, queues.requests, "huge-id")
    ended = assert_each_ends_normally(results_reader, ids, sandbox, timeout=20)
    assert str(2**63) in ended[ids[0]]["error"]["message"]
    (failed,) = [
        entry
        for entry in log_entries(worker)
        if entry.get("message") == "failed" and entry.get("request_id") == ids[0]
    ]
    assert failed["platform_campaign_id"] == str(2**63)
    assert "Traceback" not in worker.log_text()
    healthy(env)


def test_health_fails_while_a_step_holds_a_request_past_its_limit(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, sqlite_url
):
    sandbox = make_sandbox(create_faults=["slow:6"])
    env = worker_env(sandbox.url, sqlite_url, HTTP_TIMEOUT_SECONDS="10")
    worker = start_worker(env)
    publish(rabbitmq_url, queues.requests, call_request("held-1"))
    wait_for_sending(worker, "held-1")

    stuck = eventually(
        lambda: (
            (found := callbridge("health", "--max-step-age", "2", env=env)).returncode == 1
            and found
        ),
        what="health to see the request held past 2 s",
    )
    assert stuck.stdout.startswith("unhealthy: 1 campaign(s) held by a live worker's step")
    assert "held-1 sending for" in stuck.stdout
    assert "no campaign held too long by a step" in healthy(env)  # the default: deadline + 60 s

    results_reader.wait_for(lambda events: "held-1" in outcomes(events), timeout=20)
    assert callbridge("health", "--max-step-age", "2", env=env).returncode == 0
