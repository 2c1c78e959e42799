"""Prometheus metrics: what happened (counters, latency) and what is waiting (gauges).

Counters and the latency histogram are process-wide and updated by the steps as they go. The
gauges describe the store, which other workers change too, so they are not kept here at all:
they are read from the ``stats`` callable the worker provides, once per scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemas.events import EVENT_TYPES

log = logging.getLogger("callbridge.metrics")

REQUEST_OUTCOMES = ("created", "rejected", "failed_not_created", "failed_unknown")
PLATFORM_ENDPOINTS = ("create", "report")
# Platform calls time out after HTTP_TIMEOUT_SECONDS (default 20): the buckets reach past it.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

Stats = Callable[[], Mapping[str, Any]]

REQUESTS = Counter(
    "callbridge_requests",
    "Call requests by how they ended: created, rejected, or failed (not created / unknown).",
    ["outcome"],
    registry=None,
)
PHONES_REJECTED = Counter(
    "callbridge_phones_rejected",
    "Phones left out of a campaign, by reason.",
    ["reason"],
    registry=None,
)
PLATFORM_CALL_SECONDS = Histogram(
    "callbridge_platform_call_seconds",
    "Duration of calls to the platform API, by endpoint and outcome.",
    ["endpoint", "outcome"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
EVENTS_PUBLISHED = Counter(
    "callbridge_events_published",
    "Result events published to the CRM (confirmed by the broker), by type.",
    ["type"],
    registry=None,
)
EVENTS_UNROUTABLE = Counter(
    "callbridge_events_unroutable",
    "Events returned by the broker because no queue took them (a reply_to that does not "
    "exist): each went to the results queue instead, or was set aside. By type.",
    ["type"],
    registry=None,
)
_METRICS = (REQUESTS, PHONES_REJECTED, PLATFORM_CALL_SECONDS, EVENTS_PUBLISHED, EVENTS_UNROUTABLE)

# Known label values start at 0, so that rate() and alerts see a series before the first event.
for _outcome in REQUEST_OUTCOMES:
    REQUESTS.labels(_outcome)
for _event_type in EVENT_TYPES:
    EVENTS_PUBLISHED.labels(_event_type)
    EVENTS_UNROUTABLE.labels(_event_type)


def count_request(outcome: str) -> None:
    """One request reached its end state; ``outcome`` is one of ``REQUEST_OUTCOMES``."""
    REQUESTS.labels(_known(outcome, REQUEST_OUTCOMES, "request outcome")).inc()


def count_phone_rejected(reason: str, n: int = 1) -> None:
    PHONES_REJECTED.labels(reason).inc(n)


def observe_platform_call(endpoint: str, outcome: str, seconds: float) -> None:
    """``endpoint`` is one of ``PLATFORM_ENDPOINTS``; ``outcome`` is the caller's own word."""
    endpoint = _known(endpoint, PLATFORM_ENDPOINTS, "endpoint")
    PLATFORM_CALL_SECONDS.labels(endpoint, outcome).observe(seconds)


def count_event_published(event_type: str) -> None:
    EVENTS_PUBLISHED.labels(event_type).inc()


def count_event_unroutable(event_type: str) -> None:
    EVENTS_UNROUTABLE.labels(event_type).inc()


def _known(value: str, allowed: tuple[str, ...], what: str) -> str:
    """A typo in a label must fail in tests, not open a new series in production."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def start_metrics_server(port: int, *, stats: Stats) -> int:
    """Serve /metrics on ``port`` (all interfaces; 0: a free one) from a daemon thread; the port.

    Each call gets its own registry holding the shared counters, the process collectors and a
    gauge collector over ``stats``, so starting a second server (tests, CLI) never clashes.
    """
    registry = CollectorRegistry()
    for metric in _METRICS:
        registry.register(metric)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(StatsCollector(stats))
    server, _thread = start_http_server(port, registry=registry)
    return server.server_port


class StatsCollector:
    """Gauges computed from ``stats()`` at scrape time.

    ``stats()`` returns ``outbox_backlog``, ``outbox_oldest_age_seconds`` (None when nothing
    waits; shown as 0), ``outbox_set_aside``, ``requests_by_state`` and ``campaigns_by_state``
    ({state: count}) and ``reports_due``. If it raises,
    the gauges are left out of that scrape and every other metric is still served; the failure
    is logged once until a scrape succeeds again.
    """

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._failing = False

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(gauges(self._stats()))
        except Exception:
            if not self._failing:
                log.warning("metrics: reading the store's figures failed", exc_info=True)
            self._failing = True
            return
        self._failing = False
        yield from families


def gauges(figures: Mapping[str, Any]) -> Iterator[Metric]:
    """The gauge families for one ``stats()`` result."""
    yield _gauge(
        "callbridge_outbox_backlog", "Result events not yet published.", figures["outbox_backlog"]
    )
    yield _gauge(
        "callbridge_outbox_oldest_age_seconds",
        "Age of the oldest unpublished result event; 0 when none waits.",
        figures["outbox_oldest_age_seconds"] or 0,
    )
    yield _gauge(
        "callbridge_outbox_set_aside",
        "Events set aside because the broker refused them for good (callbridge status shows "
        "each with its reason).",
        figures["outbox_set_aside"],
    )
    for kind in ("requests", "campaigns"):
        by_state = GaugeMetricFamily(
            f"callbridge_{kind}_in_state",
            f"{kind.title()} in the store, by state.",
            labels=["state"],
        )
        for state, count in sorted(figures[f"{kind}_by_state"].items()):
            by_state.add_metric([str(state)], float(count))
        yield by_state
    yield _gauge(
        "callbridge_reports_due", "Created campaigns whose report is due.", figures["reports_due"]
    )


def _gauge(name: str, documentation: str, value: float) -> Metric:
    return GaugeMetricFamily(name, documentation, value=float(value))
