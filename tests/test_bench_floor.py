"""The bench's floor (``python -m bench.floor``) keeps the promises a ratio against it needs.

The worker is read against the floor, so a floor that dropped a request, answered one twice or
acked before its result was safe would make every ratio a lie.
"""

from __future__ import annotations

import subprocess
import sys

from kombu import Connection

from tests.builders import call_request, publish_many
from tests.plugins.services import ROOT

REQUESTS = 60


def test_the_floor_creates_each_request_once_and_acks_it_after_its_result(
    sandbox, worker_env, rabbitmq_url, queues, results_reader
):
    bodies = [call_request(f"floor-{n:03d}", phones=3) for n in range(REQUESTS)]
    publish_many(rabbitmq_url, queues.requests, bodies)
    # A prefetch far below the burst: the broker sends more only as the floor acks.
    env = worker_env(sandbox.url, "sqlite:///unused.db", HTTP_CONCURRENCY="4", PREFETCH_COUNT="7")

    finished = subprocess.run(
        [sys.executable, "-m", "bench.floor", str(REQUESTS)], cwd=ROOT, env=env, timeout=60
    )

    assert finished.returncode == 0
    events = results_reader.wait_for(lambda events: len(events) >= REQUESTS)
    assert {event["type"] for event in events} == {"campaign.created"}
    assert sorted(event["request_id"] for event in events) == [b["request_id"] for b in bodies]
    assert sorted(event["campaign_id"] for event in events) == sorted(
        campaign.id for campaign in sandbox.campaigns
    )
    assert len(sandbox.campaigns) == REQUESTS
    # The floor has exited: a request it had not acked would be back in the queue.
    with Connection(rabbitmq_url) as connection:
        left = connection.default_channel.queue_declare(queues.requests, passive=True)
    assert left.message_count == 0
