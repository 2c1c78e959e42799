"""The figures the bench reports, their targets, and how one run measures them all.

A run measures every scenario once. Ratios are taken inside a run: the worker against the floor
measured just before it, never against another run's floor, since the machine's speed drifts
between runs. The reported figure is the median over runs, of the ratio itself for a ratio.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence

from bench import scenarios
from bench.rig import Rig


@dataclasses.dataclass(frozen=True)
class Figure:
    """One line of the table: its key in the JSON line, what it says, and its target if any."""

    key: str
    title: str
    unit: str
    target: float | None = None
    at_most: bool = False  # the target is a ceiling, not a floor

    @property
    def sign(self) -> str:
        return "≤" if self.at_most else "≥"

    def met(self, value: float) -> bool | None:
        if self.target is None:
            return None
        return value <= self.target if self.at_most else value >= self.target


FIGURES = (
    Figure("floor", "floor: consume, POST, publish confirmed, ack", "msg/s"),
    Figure("sqlite", "callbridge run, SQLite, 0 ms platform", "msg/s"),
    Figure("sqlite_vs_floor", "  SQLite / floor", "×", 0.5),
    Figure("postgres", "callbridge run, PostgreSQL, 0 ms platform", "msg/s"),
    Figure("postgres_vs_floor", "  PostgreSQL / floor", "×", 0.4),
    Figure("latency_200ms", "1 process, PostgreSQL, 200 ms platform, 8 threads", "req/s", 36),
    Figure("two_workers", "2 processes, one PostgreSQL, 200 ms platform, 8 threads each", "req/s"),
    Figure("two_vs_one", "  2 processes / 1 process", "×", 1.8),
    Figure("request_cpu_s", "50,000-phone request: CPU receipt → create call", "s", 2, True),
    Figure("request_peak_rss_mb", "50,000-phone request: peak RSS", "MB", 250, True),
    Figure("zones_cpu_s", "50,000 contacts in 11 zones: CPU receipt → last create call", "s"),
    Figure("zones_extra_cpu_s", "  across zones − one zone", "s", 0.5, True),
    Figure("report_s", "100,000-row report: analytics call → last part published", "s", 5, True),
    Figure("report_peak_rss_mb", "100,000-row report: peak RSS", "MB", 400, True),
    Figure("idle_p50_ms", "idle latency receipt → campaign.created, p50", "ms", 20, True),
    Figure("idle_p90_ms", "idle latency receipt → campaign.created, p90", "ms"),
)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each scenario does; ``--quick`` shrinks the bursts, never the big request."""

    burst: int = 2000
    slow_burst: int = 400  # per worker process, at 200 ms platform latency
    big_phones: int = 50_000
    report_rows_per_phone: int = 2
    idle_samples: int = 20


QUICK = Sizes(burst=400, slow_burst=150, idle_samples=10)


def measure_run(rig: Rig, sizes: Sizes, only: Sequence[str] = ()) -> dict[str, float]:
    """Every figure once (or those of the ``only`` groups): one run of the bench."""
    figures: dict[str, float] = {}

    def wanted(group: str) -> bool:
        return not only or group in only

    if wanted("throughput"):
        figures["floor"] = scenarios.floor_rate(rig, sizes.burst)
        figures["sqlite"] = scenarios.worker_rate(rig, sizes.burst, database="sqlite")
        figures["postgres"] = scenarios.worker_rate(rig, sizes.burst, database="postgresql")
        figures["sqlite_vs_floor"] = figures["sqlite"] / figures["floor"]
        figures["postgres_vs_floor"] = figures["postgres"] / figures["floor"]
    if wanted("latency"):
        slow = {"database": "postgresql", "latency": 0.2, "concurrency": 8}
        figures["latency_200ms"] = scenarios.worker_rate(rig, sizes.slow_burst, **slow)
        figures["two_workers"] = scenarios.worker_rate(rig, 2 * sizes.slow_burst, workers=2, **slow)
        figures["two_vs_one"] = figures["two_workers"] / figures["latency_200ms"]
    if wanted("big"):
        big = scenarios.big_request(
            rig, phones=sizes.big_phones, rows_per_phone=sizes.report_rows_per_phone
        )
        figures.update(big)
        figures.update(scenarios.zones_request(rig, phones=sizes.big_phones))
        figures["zones_extra_cpu_s"] = figures["zones_cpu_s"] - figures["request_cpu_s"]
    if wanted("idle"):
        idle = scenarios.idle_latency(rig, sizes.idle_samples)
        figures["idle_p50_ms"], figures["idle_p90_ms"] = idle["p50_ms"], idle["p90_ms"]
    return figures


def medians(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = [figure.key for figure in FIGURES if all(figure.key in run for run in runs)]
    return {key: statistics.median(run[key] for run in runs) for key in keys}
