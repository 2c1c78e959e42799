"""The floor: our pipeline built from the same kombu and requests calls, without callbridge.

For each call request: consume it (manual ack), decode it, POST a campaign body made from it to
the platform, publish a result with publisher confirms, and ack the request once the broker has
confirmed its result. There is no store and no validation beyond what the POST needs; the rest
is the best these libraries allow at the worker's own settings, so that the worker read against
it shows what callbridge's store and checks cost, not a handicap of the floor:

- ``HTTP_CONCURRENCY`` threads POST, each with a session tuned as the worker's (no retries, the
  proxy environment read once), as many requests in flight as the worker has;
- one thread does all the broker's work on one connection and never waits for the broker: it
  publishes results as they come, reads the broker's confirms (one often covers many) as they
  arrive, and acks each run of confirmed requests with one ``multiple`` ack.

Run as ``python -m bench.floor COUNT`` with the worker's variables (``BROKER_URL``,
``CALL_REQUESTS_QUEUE``, ``CALL_RESULTS_QUEUE``, ``IS74_API_URL``, ``IS74_API_TOKEN``,
``HTTP_CONCURRENCY``, ``PREFETCH_COUNT``...); it exits once COUNT requests are acked.
"""

from __future__ import annotations

import json
import queue
import re
import select
import socket
import sys
import threading

from kombu import Connection, Consumer, Queue
from kombu.transport.base import Message

from adapters.broker import CONFIRM_TIMEOUT_SECONDS
from adapters.config import Settings, load_settings
from adapters.platform_client import CREATE_PATH, session_without_retries

# The longest the broker thread waits with nothing happening before it gives up.
IDLE_TIMEOUT_SECONDS = 60.0

_NOT_DIGITS = re.compile(r"[^0-9]")

# (delivery tag of the request, the result to publish), or what went wrong with it.
Finished = tuple[int, bytes] | Exception


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


def run(count: int, settings: Settings) -> None:
    todo: queue.SimpleQueue[tuple[int, bytes | str] | None] = queue.SimpleQueue()
    finished: queue.SimpleQueue[Finished] = queue.SimpleQueue()
    wake_reader, wake_writer = socket.socketpair()
    posters = [
        threading.Thread(
            target=_post_each, args=(settings, todo, finished, wake_writer), daemon=True
        )
        for _ in range(settings.http_concurrency)
    ]
    for poster in posters:
        poster.start()
    with Connection(settings.broker_url) as connection:
        broker = _BrokerSide(connection, settings, todo)
        amqp_socket = connection.connection.sock
        while broker.acked < count:
            readable, _, _ = select.select([amqp_socket, wake_reader], [], [], IDLE_TIMEOUT_SECONDS)
            if not readable:
                raise TimeoutError(f"{broker.acked} of {count} requests done, then nothing")
            if wake_reader in readable:
                wake_reader.recv(4096)
                broker.publish(finished)
            while _waiting(amqp_socket):
                connection.drain_events(timeout=CONFIRM_TIMEOUT_SECONDS)
            broker.ack_confirmed()
    for _ in posters:
        todo.put(None)


class _BrokerSide:
    """All the broker's work, done by the one thread that owns the connection."""

    def __init__(self, connection: Connection, settings: Settings, todo: queue.SimpleQueue):
        self._todo = todo
        self._results_queue = settings.call_results_queue
        self._channel = connection.channel()
        self._channel.basic_qos(0, settings.prefetch_count, False)
        self._consumer = Consumer(
            self._channel,
            queues=[Queue(settings.call_requests_queue, no_declare=True)],
            on_message=self._received,
            accept=None,
        )
        self._consumer.consume()
        # Confirm mode selected on the channel, not asked of the connection: a connection asked
        # for confirms waits for each publish's own.
        self._publisher = connection.channel()
        self._publisher.events["basic_ack"].add(self._confirmed)
        self._publisher.events["basic_nack"].add(self._refused)
        self._publisher.confirm_select()
        self._published = 0
        self._request_of: dict[int, int] = {}  # publish number -> its request's delivery tag
        self._confirmed_requests: set[int] = set()
        self.acked = 0  # requests are acked in order: every delivery tag up to this one

    def publish(self, finished: queue.SimpleQueue[Finished]) -> None:
        """Publish every result finished so far, without waiting for the broker."""
        while True:
            try:
                item = finished.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Exception):
                raise item
            delivery_tag, body = item
            message = self._publisher.prepare_message(
                body, 0, "application/json", "utf-8", {}, {"delivery_mode": 2}
            )
            self._publisher.basic_publish(message, exchange="", routing_key=self._results_queue)
            self._published += 1
            self._request_of[self._published] = delivery_tag

    def ack_confirmed(self) -> None:
        """Ack the requests whose results are confirmed, up to the first one still in flight."""
        last = self.acked
        while last + 1 in self._confirmed_requests:
            last += 1
            self._confirmed_requests.remove(last)
        if last > self.acked:
            self._channel.basic_ack(last, multiple=True)
            self.acked = last

    def _received(self, message: Message) -> None:
        self._todo.put((message.delivery_tag, message.body))

    def _confirmed(self, number: int, multiple: bool) -> None:
        covered = [n for n in self._request_of if n <= number] if multiple else [number]
        for n in covered:
            self._confirmed_requests.add(self._request_of.pop(n))

    def _refused(self, number: int, multiple: bool) -> None:
        raise RuntimeError(f"the broker refused result {number}")


def _post_each(
    settings: Settings,
    todo: queue.SimpleQueue,
    finished: queue.SimpleQueue[Finished],
    wake: socket.socket,
) -> None:
    """One POST thread: each request taken from ``todo`` is POSTed, its result finished."""
    session = session_without_retries(1, settings.is74_api_url)
    url = settings.is74_api_url.rstrip("/") + CREATE_PATH
    headers = {
        settings.is74_auth_header: settings.auth_header_value,
        "Content-Type": "application/json",
    }
    while (item := todo.get()) is not None:
        delivery_tag, body = item
        try:
            request = json.loads(body)
            answer = session.post(
                url,
                data=campaign_body(request),
                headers=headers,
                timeout=settings.http_timeout_seconds,
                allow_redirects=False,
            )
            answer.raise_for_status()
            event = {
                "type": "campaign.created",
                "request_id": request["request_id"],
                "campaign_id": answer.json()["campaign"]["id"],
            }
            finished.put((delivery_tag, json.dumps(event).encode()))
        except Exception as exc:  # the broker thread raises it: the floor fails loudly
            finished.put(exc)
        wake.send(b"\0")


def _waiting(sock: socket.socket) -> bool:
    """Whether the broker has sent something not read yet."""
    return bool(select.select([sock], [], [], 0)[0])


if __name__ == "__main__":
    run(int(sys.argv[1]), load_settings())
