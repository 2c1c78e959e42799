"""The floor: our pipeline built from the same kombu and requests calls, without callbridge.

For each call request: consume it (manual ack), decode it, POST a campaign body made from it to
the platform, publish a result with publisher confirms, ack. One message at a time, no store,
no validation beyond what the POST needs: what the hardware and the libraries allow, against
which the worker's throughput is read as a ratio.

Run as ``python -m bench.floor COUNT`` with the worker's variables (``BROKER_URL``,
``CALL_REQUESTS_QUEUE``, ``CALL_RESULTS_QUEUE``, ``IS74_API_URL``, ``IS74_API_TOKEN``,
``PREFETCH_COUNT``); it exits after COUNT messages.
"""

from __future__ import annotations

import json
import os
import re
import sys

import requests
from kombu import Connection, Consumer, Producer, Queue
from kombu.transport.base import Message

from adapters.broker import CONFIRM_TIMEOUT_SECONDS

_NOT_DIGITS = re.compile(r"[^0-9]")


def campaign_body(request: dict) -> bytes:
    """The platform's body for a request, in one pass: the least any client must do."""
    campaign = request["campaign"]
    schedule = campaign["schedule"]
    body = {
        "campaign": {
            "project_id": campaign["project_id"],
            "name": campaign["name"],
            "start_block_id": campaign["start_block_id"],
            "phone_id": campaign["phone_id"],
            "state": "Создано",
            "schedule": {
                "date": schedule["date"],
                "start_time": schedule["start_time"],
                "end_time": schedule["end_time"],
                "periods": {"id": 1, "title": "Однократно"},
                "attempts": {"id": schedule["attempts"], "title": str(schedule["attempts"])},
                "interval": str(schedule["interval"]),
            },
        },
        "phones": [
            {"phone": "+7" + _NOT_DIGITS.sub("", p["phone"])[-10:], "add_data": p["add_data"]}
            for p in request["phones"]
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def run(count: int, env: dict[str, str]) -> None:
    session = requests.Session()
    url = env["IS74_API_URL"].rstrip("/") + "/api/campaigns"
    headers = {
        "Authorization": f"Bearer {env['IS74_API_TOKEN']}",
        "Content-Type": "application/json",
    }
    results_queue = env["CALL_RESULTS_QUEUE"]
    done = 0
    with Connection(env["BROKER_URL"], transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.channel())

        def on_message(message: Message) -> None:
            nonlocal done
            request = json.loads(message.body)
            answer = session.post(url, data=campaign_body(request), headers=headers, timeout=20)
            answer.raise_for_status()
            event = {
                "type": "campaign.created",
                "request_id": request["request_id"],
                "campaign_id": answer.json()["campaign"]["id"],
            }
            producer.publish(
                json.dumps(event).encode(),
                exchange="",
                routing_key=results_queue,
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
                confirm_timeout=CONFIRM_TIMEOUT_SECONDS,
            )
            message.ack()
            done += 1

        channel = connection.channel()
        channel.basic_qos(0, int(env.get("PREFETCH_COUNT", "50")), False)
        queue = Queue(env["CALL_REQUESTS_QUEUE"], no_declare=True)
        with Consumer(channel, queues=[queue], on_message=on_message, accept=None):
            while done < count:
                connection.drain_events(timeout=30)


if __name__ == "__main__":
    run(int(sys.argv[1]), dict(os.environ))
