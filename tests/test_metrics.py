"""Metrics, scraped over HTTP from a server started in this process."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import requests

from adapters import metrics
from tests.plugins.services import scrape_metrics

FIGURES = {
    "outbox_backlog": 3,
    "outbox_oldest_age_seconds": 42.5,
    "outbox_set_aside": 2,
    "requests_by_state": {"created": 2, "pending": 1},
    "campaigns_by_state": {"created": 2, "sending": 1},
    "reports_due": 1,
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Stats:
    """The worker's stats callable, with figures (or a failure) the test sets."""

    def __init__(self) -> None:
        self.figures: Mapping[str, Any] | Exception = FIGURES

    def __call__(self) -> Mapping[str, Any]:
        if isinstance(self.figures, Exception):
            raise self.figures
        return self.figures


@pytest.fixture(scope="module")
def server() -> tuple[Stats, Callable[[], Samples]]:
    """One metrics server for the module, and a function that scrapes it."""
    stats = Stats()
    port = metrics.start_metrics_server(0, stats=stats)

    return stats, functools.partial(scrape_metrics, port)


def test_gauges_are_read_from_stats_at_each_scrape(server: Any) -> None:
    stats, scrape = server
    samples = scrape()
    assert samples[("callbridge_outbox_backlog", ())] == 3
    assert samples[("callbridge_outbox_oldest_age_seconds", ())] == 42.5
    assert samples[("callbridge_outbox_set_aside", ())] == 2
    assert samples[("callbridge_requests_in_state", (("state", "created"),))] == 2
    assert samples[("callbridge_requests_in_state", (("state", "pending"),))] == 1
    assert samples[("callbridge_campaigns_in_state", (("state", "sending"),))] == 1
    assert samples[("callbridge_reports_due", ())] == 1

    stats.figures = {**FIGURES, "outbox_backlog": 0, "outbox_oldest_age_seconds": None}
    try:
        samples = scrape()
    finally:
        stats.figures = FIGURES
    assert samples[("callbridge_outbox_backlog", ())] == 0
    assert samples[("callbridge_outbox_oldest_age_seconds", ())] == 0


@pytest.mark.parametrize(
    ("failure", "figures"),
    [
        ("stats raises", RuntimeError("database is down")),
        ("stats misses a figure", {"outbox_backlog": 1}),
    ],
)
def test_a_failing_stats_leaves_the_other_metrics_served_and_logs_once(
    server: Any, caplog: pytest.LogCaptureFixture, failure: str, figures: Any
) -> None:
    stats, scrape = server
    stats.figures = figures
    try:
        with caplog.at_level(logging.WARNING, logger="callbridge.metrics"):
            first, second = scrape(), scrape()
    finally:
        stats.figures = FIGURES
    for samples in (first, second):
        assert ("callbridge_requests_total", (("outcome", "created"),)) in samples
        assert not any(name.startswith("callbridge_outbox") for name, _ in samples), failure
    assert len(caplog.records) == 1
    assert ("callbridge_outbox_backlog", ()) in scrape()


@pytest.mark.parametrize(
    ("count", "value", "series", "label"),
    [
        (metrics.count_request, "created", "callbridge_requests_total", "outcome"),
        (metrics.count_request, "rejected", "callbridge_requests_total", "outcome"),
        (metrics.count_request, "failed_not_created", "callbridge_requests_total", "outcome"),
        (metrics.count_request, "failed_unknown", "callbridge_requests_total", "outcome"),
        (metrics.count_phone_rejected, "duplicate", "callbridge_phones_rejected_total", "reason"),
        (
            metrics.count_event_published,
            "campaign.report",
            "callbridge_events_published_total",
            "type",
        ),
    ],
)
def test_each_counter_counts_under_its_label(
    server: Any, count: Callable[[str], None], value: str, series: str, label: str
) -> None:
    _, scrape = server
    key = (series, ((label, value),))
    before = scrape().get(key, 0.0)
    count(value)
    assert scrape()[key] == before + 1


def test_phones_rejected_counts_several_at_once(server: Any) -> None:
    _, scrape = server
    key = ("callbridge_phones_rejected_total", (("reason", "invalid"),))
    before = scrape().get(key, 0.0)
    metrics.count_phone_rejected("invalid", 5)
    assert scrape()[key] == before + 5


def test_known_series_exist_before_anything_happened(server: Any) -> None:
    _, scrape = server
    samples = scrape()
    for outcome in metrics.REQUEST_OUTCOMES:
        assert ("callbridge_requests_total", (("outcome", outcome),)) in samples
    for event_type in metrics.EVENT_TYPES:
        assert ("callbridge_events_published_total", (("type", event_type),)) in samples


def test_platform_latency_lands_in_its_bucket(server: Any) -> None:
    _, scrape = server
    labels = (("endpoint", "report"), ("outcome", "ok"))
    before = scrape()
    metrics.observe_platform_call("report", "ok", 0.3)
    after = scrape()
    for suffix, extra, grown in [
        ("_count", (), 1),
        ("_bucket", (("le", "0.25"),), 0),
        ("_bucket", (("le", "0.5"),), 1),
    ]:
        key = (f"callbridge_platform_call_seconds{suffix}", tuple(sorted(labels + extra)))
        assert after[key] == before.get(key, 0.0) + grown, key


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.count_request("created_ok"),
        lambda: metrics.observe_platform_call("create_campaign", "ok", 0.1),
    ],
    ids=["outcome", "endpoint"],
)
def test_a_label_typo_fails_loudly(call: Callable[[], None]) -> None:
    with pytest.raises(ValueError, match="unknown"):
        call()


def test_two_servers_in_one_process_do_not_clash(server: Any) -> None:
    port = metrics.start_metrics_server(0, stats=lambda: {**FIGURES, "reports_due": 7})
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=(2, 5)).text
    assert "callbridge_reports_due 7.0" in text
    assert "callbridge_requests_total" in text
