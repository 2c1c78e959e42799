"""The measurements, one function each; every one returns plain figures.

Throughput is read at the results queue (``rig.steady_rate``): a burst of call requests is
published first, the process under test is started, and the rate is the pace at which result
events arrive between 10 % and 90 % of the burst. Every result is then checked to be a
``campaign.created``, so a worker that failed requests fast could not pass for a fast one.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import time
import uuid

from kombu import Connection, Consumer, Producer, Queue

from adapters.store import open_store
from adapters.store.tables import campaigns_table
from bench.proc import cpu_seconds, peak_rss_mb, reset_peak_rss
from bench.rig import BenchError, Rig, Scenario, steady_rate
from tests.builders import call_request, phone, publish, publish_many

PHONES_PER_REQUEST = 10
# While the sandbox holds its answer to the big campaign this long, the worker is idle, so its
# CPU time read then is what it spent from receipt to the create call.
CREATE_HOLD_SECONDS = 1.0
LONG_WAIT_SECONDS = 180.0
IDLE_GAP_SECONDS = 0.2
# Russia's zones, each with a geographic area code in it: a national CRM's contacts.
RUSSIAN_ZONES = (
    ("Europe/Kaliningrad", "4012"),
    ("Europe/Moscow", "495"),
    ("Europe/Samara", "846"),
    ("Asia/Yekaterinburg", "343"),
    ("Asia/Omsk", "3812"),
    ("Asia/Krasnoyarsk", "391"),
    ("Asia/Irkutsk", "3952"),
    ("Asia/Yakutsk", "4112"),
    ("Asia/Vladivostok", "423"),
    ("Asia/Magadan", "4132"),
    ("Asia/Kamchatka", "4152"),
)


def floor_rate(rig: Rig, count: int) -> float:
    """Messages per second of ``bench.floor``: the pipeline without callbridge."""
    with rig.scenario() as scenario:
        request_ids = _publish_burst(scenario, count)
        floor = [sys.executable, "-m", "bench.floor", str(count)]
        scenario.start_process(floor, scenario.env(), name=rig.next_name("floor"))
        rate = steady_rate(rig.broker_url, scenario.queues.results, count, timeout=_budget(count))
        _expect_created(scenario, request_ids)
        return rate


def worker_rate(
    rig: Rig,
    count: int,
    *,
    database: str,
    workers: int = 1,
    latency: float = 0.0,
    concurrency: int | None = None,
) -> float:
    """Requests per second of ``workers`` processes of ``callbridge run`` on one store."""
    with rig.scenario() as scenario:
        rig.sandbox.configure(latency=latency)
        env = scenario.env(DATABASE_URL=scenario.database_url(database))
        if concurrency:
            env["HTTP_CONCURRENCY"] = str(concurrency)
        request_ids = _publish_burst(scenario, count)
        scenario.start_workers(env, workers, wait=False)
        rate = steady_rate(
            rig.broker_url, scenario.queues.results, count, timeout=_budget(count, latency)
        )
        _expect_created(scenario, request_ids)
        return rate


def big_request(rig: Rig, *, database: str, phones: int, rows_per_phone: int) -> dict[str, float]:
    """One request of ``phones`` phones, then its report of ``phones * rows_per_phone`` rows,
    on a store of ``database``.

    The request: the worker's CPU seconds from receipt to the create call, and its peak RSS
    until ``campaign.created`` was published. The report: seconds from the worker's analytics
    call to the last ``campaign.report`` part published (both from the worker's own log, so
    the figure includes the sandbox building its answer), and the peak RSS meanwhile.
    """
    with rig.scenario() as scenario:
        rig.sandbox.configure(latency=CREATE_HOLD_SECONDS, report_rows_per_phone=rows_per_phone)
        database_url = scenario.database_url(database)
        (worker,) = scenario.start_workers(scenario.env(DATABASE_URL=database_url))
        request_id = f"big-{uuid.uuid4().hex[:8]}"
        body = json.dumps(call_request(request_id, phones=phones), ensure_ascii=False).encode()
        time.sleep(0.5)  # past start-up: the worker is idle
        reset_peak_rss(worker.pid)
        cpu_before = cpu_seconds(worker.pid)
        publish(rig.broker_url, scenario.queues.requests, body)
        _wait_until(lambda: rig.sandbox.create_calls() >= 1, "the create call")
        figures = {"request_cpu_s": cpu_seconds(worker.pid) - cpu_before}
        rig.sandbox.configure(latency=0)
        (created,) = _take_events(scenario, 1)
        if created["type"] != "campaign.created" or created["phones_accepted"] != phones:
            raise BenchError(f"the big request ended as {created['type']}")
        figures["request_peak_rss_mb"] = peak_rss_mb(worker.pid)

        reset_peak_rss(worker.pid)
        _make_report_due(database_url, request_id)
        _wait_until(lambda: '"reported"' in worker.log_text(), "the report")
        parts = _take_events(scenario, _log_field(worker.log_text(), "reported", "parts"))
        if sum(len(part["rows"]) for part in parts) != phones * rows_per_phone:
            raise BenchError("the report's parts do not hold every row")
        figures["report_peak_rss_mb"] = peak_rss_mb(worker.pid)
        # The relay logs a batch once the broker confirmed all of it: wait for those lines.
        _wait_until(
            lambda: len(_report_published(worker.log_text())) == len(parts), "the relay's log"
        )
        figures["report_s"] = _report_seconds(worker.log_text())
        return figures


def zones_request(rig: Rig, *, phones: int) -> dict[str, float]:
    """One request of ``phones`` contacts across Russia's eleven zones, planned into the
    campaigns their calling hours need: the worker's CPU seconds from receipt to the last
    create call (the sandbox holds each answer, so the worker is idle when it is read)."""
    with rig.scenario() as scenario:
        rig.sandbox.configure(latency=CREATE_HOLD_SECONDS)
        (worker,) = scenario.start_workers(scenario.env(DATABASE_URL=scenario.sqlite_url()))
        body = json.dumps(national_request(f"zones-{uuid.uuid4().hex[:8]}", phones)).encode()
        time.sleep(0.5)  # past start-up: the worker is idle
        cpu_before = cpu_seconds(worker.pid)
        publish(rig.broker_url, scenario.queues.requests, body)
        _wait_until(lambda: '"accepted"' in worker.log_text(), "intake")
        campaigns = _log_field(worker.log_text(), "accepted", "campaigns")
        _wait_until(lambda: rig.sandbox.create_calls() >= campaigns, "the create calls")
        figures = {"zones_cpu_s": cpu_seconds(worker.pid) - cpu_before}
        rig.sandbox.configure(latency=0)
        (created,) = _take_events(scenario, 1)
        if created["type"] != "campaign.created" or len(created["campaigns"]) != campaigns:
            raise BenchError(f"the request across zones ended as {created['type']}")
        return figures


def national_request(request_id: str, phones: int) -> dict:
    """A request whose contacts are spread over Russia's zones: a third with a zone given, a
    third with geographic numbers (their zone from the numbering plan), a third mobile numbers
    in the request's own zone; tomorrow 07:00-23:00 in Yekaterinburg, so the calling hours cut
    each zone's window differently."""
    body = call_request(
        request_id, phones=phones, schedule={"start_time": "07:00", "end_time": "23:00"}
    )
    for n, entry in enumerate(body["phones"]):
        zone, code = RUSSIAN_ZONES[n % len(RUSSIAN_ZONES)]
        if n % 3 == 0:
            entry["timezone"] = zone
        elif n % 3 == 1:
            entry["phone"] = f"+7{code}{n:0{10 - len(code)}d}"
        else:
            entry["phone"] = phone(n)
    return body


def idle_latency(rig: Rig, samples: int, *, database: str) -> dict[str, float]:
    """Milliseconds from publishing one request to receiving its ``campaign.created``, at idle,
    on a store of ``database``.

    One request at a time with a pause between, so the worker is idle when each arrives; the
    first is a warm-up (the HTTP connection is opened) and not counted.
    """
    with rig.scenario() as scenario:
        scenario.start_workers(scenario.env(DATABASE_URL=scenario.database_url(database)))
        bodies = [
            json.dumps(call_request(f"idle-{uuid.uuid4().hex[:8]}-{n}", phones=1)).encode()
            for n in range(samples + 1)
        ]
        arrived: list[float] = []
        took: list[float] = []
        with (
            Connection(rig.broker_url, transport_options={"confirm_publish": True}) as out,
            Connection(rig.broker_url) as into,
            Consumer(
                into,
                queues=[Queue(scenario.queues.results, no_declare=True)],
                on_message=lambda message: (arrived.append(time.perf_counter()), message.ack()),
            ),
        ):
            producer = Producer(out.default_channel)
            for body in bodies:
                time.sleep(IDLE_GAP_SECONDS)
                sent = time.perf_counter()
                producer.publish(
                    body,
                    exchange="",
                    routing_key=scenario.queues.requests,
                    delivery_mode=2,
                    content_type="application/json",
                    content_encoding="utf-8",
                )
                waited = len(arrived)
                while len(arrived) == waited:
                    try:
                        into.drain_events(timeout=LONG_WAIT_SECONDS)
                    except TimeoutError:
                        raise BenchError("a request at idle got no result") from None
                took.append((arrived[-1] - sent) * 1000)
        counted = sorted(took[1:])
        return {
            "p50_ms": statistics.median(counted),
            "p90_ms": counted[int(0.9 * (len(counted) - 1))],
        }


# -- helpers ----------------------------------------------------------------------------------


def _publish_burst(scenario: Scenario, count: int) -> set[str]:
    """Publish ``count`` call requests; their request ids."""
    prefix = uuid.uuid4().hex[:8]
    bodies = [call_request(f"{prefix}-{n:05d}", phones=PHONES_PER_REQUEST) for n in range(count)]
    publish_many(scenario.rig.broker_url, scenario.queues.requests, bodies)
    return {body["request_id"] for body in bodies}


def _budget(count: int, latency: float = 0.0) -> float:
    """A generous bound on how long a burst may take, so a stuck run fails instead of hanging."""
    return 60.0 + count * (0.02 + latency)


def _take_events(scenario: Scenario, count: int) -> list[dict]:
    """The next ``count`` result events, decoded, waiting as long as it takes (bounded)."""
    events: list[dict] = []
    deadline = time.monotonic() + LONG_WAIT_SECONDS
    with Connection(scenario.rig.broker_url) as connection:
        channel = connection.default_channel
        while len(events) < count:
            message = channel.basic_get(scenario.queues.results, no_ack=True)
            if message is not None:
                events.append(json.loads(message.body))
            elif time.monotonic() > deadline:
                raise BenchError(f"{len(events)} of {count} result events arrived")
            else:
                time.sleep(0.05)
    return events


def _expect_created(scenario: Scenario, request_ids: set[str]) -> None:
    """The results are one ``campaign.created`` for each request of the burst, each with its
    own campaign, and nothing else: the platform received one create call per request."""
    count = len(request_ids)
    events = _take_events(scenario, count)
    wrong = [event["type"] for event in events if event["type"] != "campaign.created"]
    if wrong:
        raise BenchError(f"{len(wrong)} of {count} requests did not end created: {wrong[:3]}")
    if {event["request_id"] for event in events} != request_ids:
        raise BenchError("the results do not name each request of the burst once")
    if len({event["campaign_id"] for event in events}) != count:
        raise BenchError("two results name the same campaign")
    if (calls := scenario.rig.sandbox.create_calls()) != count:
        raise BenchError(f"the platform received {calls} create calls for {count} requests")


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + LONG_WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"waited {LONG_WAIT_SECONDS:g} s for {what}")
        time.sleep(0.02)


def _make_report_due(database_url: str, request_id: str) -> None:
    """Move the report's due time into the past, as the clock would after the calling window."""
    store = open_store(database_url)
    with store.transaction() as conn:
        conn.execute(
            campaigns_table.update()
            .where(campaigns_table.c.request_id == request_id, campaigns_table.c.state == "created")
            .values(next_attempt_at=dt.datetime(2000, 1, 1))
        )
    store.engine.dispose()


def _log_lines(log_text: str) -> list[dict]:
    return [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]


def _log_field(log_text: str, event: str, field: str) -> int:
    return next(line[field] for line in _log_lines(log_text) if line.get("message") == event)


def _report_published(log_text: str) -> list[dict]:
    return [
        line
        for line in _log_lines(log_text)
        if line.get("message") == "event published" and line.get("event_type") == "campaign.report"
    ]


def _report_seconds(log_text: str) -> float:
    """From the worker's "report due" (just before the analytics call) to its last report part
    "event published", by the log's own millisecond timestamps."""
    start = next(_ts(line) for line in _log_lines(log_text) if line.get("message") == "report due")
    end = max(_ts(line) for line in _report_published(log_text))
    return (end - start).total_seconds()


def _ts(line: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(line["ts"])
