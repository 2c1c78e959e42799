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


# The latency-bound scenario: a platform this slow, this many step threads per process. Its
# ceiling is the platform's, one answer per thread per latency; not the target's own.
SLOW_LATENCY_SECONDS = 0.2
SLOW_CONCURRENCY = 32
IDEAL_SLOW_RATE = SLOW_CONCURRENCY / SLOW_LATENCY_SECONDS
STORES = ("sqlite", "postgres")
STORE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def _ceiling(key: str, title: str, unit: str, target: float | None = None) -> Figure:
    return Figure(key, title, unit, target, at_most=True)


def _big_request_figures(store: str) -> tuple[Figure, ...]:
    request = f"50,000 phones, {STORE_NAMES[store]}"
    report = f"100,000-row report, {STORE_NAMES[store]}"
    return (
        _ceiling(f"request_cpu_s_{store}", f"{request}: CPU receipt → create call", "s", 1),
        _ceiling(f"request_peak_rss_mb_{store}", f"{request}: peak RSS", "MB", 200),
        _ceiling(f"report_s_{store}", f"{report}: analytics call → last part", "s", 5),
        _ceiling(f"report_peak_rss_mb_{store}", f"{report}: peak RSS", "MB", 400),
    )


def _idle_figures(store: str) -> tuple[Figure, ...]:
    idle = f"idle latency, {STORE_NAMES[store]}: receipt → campaign.created"
    return (
        _ceiling(f"idle_p50_ms_{store}", f"{idle}, p50", "ms", 15),
        _ceiling(f"idle_p90_ms_{store}", f"{idle}, p90", "ms"),
    )


FIGURES = (
    Figure("floor", "floor: consume, POST on the worker's threads, confirm, ack", "msg/s"),
    Figure("sqlite", "callbridge run, SQLite, 0 ms platform", "msg/s"),
    Figure("sqlite_vs_floor", "  SQLite / floor", "×", 0.6),
    Figure("postgres", "callbridge run, PostgreSQL, 0 ms platform", "msg/s"),
    Figure("postgres_vs_floor", "  PostgreSQL / floor", "×", 0.45),
    Figure(
        "latency_200ms",
        f"1 process, PostgreSQL, 200 ms platform, {SLOW_CONCURRENCY} threads",
        "req/s",
    ),
    Figure("latency_vs_ideal", f"  1 process / ideal {IDEAL_SLOW_RATE:g} req/s", "×", 0.9),
    Figure("two_workers", "2 processes, one PostgreSQL, as above", "req/s"),
    Figure("two_vs_one", "  2 processes / 1 process", "×", 1.8),
    *(figure for store in STORES for figure in _big_request_figures(store)),
    Figure("zones_cpu_s", "50,000 contacts in 11 zones, SQLite: CPU receipt → last create", "s"),
    _ceiling("zones_extra_cpu_s", "  across zones − one zone", "s", 0.5),
    *(figure for store in STORES for figure in _idle_figures(store)),
)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each scenario does; ``--quick`` shrinks the bursts, never the big request."""

    burst: int = 2000
    slow_burst: int = 1600  # per worker process: 10 s at the ideal rate
    big_phones: int = 50_000
    report_rows_per_phone: int = 2
    idle_samples: int = 20


QUICK = Sizes(burst=400, slow_burst=480, idle_samples=10)


def measure_run(rig: Rig, sizes: Sizes, only: Sequence[str] = ()) -> dict[str, float]:
    """Every figure once (or those of the ``only`` groups): one run of the bench."""
    figures: dict[str, float] = {}

    def wanted(group: str) -> bool:
        return not only or group in only

    if wanted("throughput"):
        figures["floor"] = scenarios.floor_rate(rig, sizes.burst)
        for store in STORES:
            figures[store] = scenarios.worker_rate(rig, sizes.burst, database=store)
            figures[f"{store}_vs_floor"] = figures[store] / figures["floor"]
    if wanted("latency"):
        slow = {
            "database": "postgres",
            "latency": SLOW_LATENCY_SECONDS,
            "concurrency": SLOW_CONCURRENCY,
        }
        figures["latency_200ms"] = scenarios.worker_rate(rig, sizes.slow_burst, **slow)
        figures["latency_vs_ideal"] = figures["latency_200ms"] / IDEAL_SLOW_RATE
        figures["two_workers"] = scenarios.worker_rate(rig, 2 * sizes.slow_burst, workers=2, **slow)
        figures["two_vs_one"] = figures["two_workers"] / figures["latency_200ms"]
    for store in STORES if wanted("big") else ():
        big = scenarios.big_request(
            rig, database=store, phones=sizes.big_phones, rows_per_phone=sizes.report_rows_per_phone
        )
        figures.update({f"{key}_{store}": value for key, value in big.items()})
    if wanted("big"):
        figures.update(scenarios.zones_request(rig, phones=sizes.big_phones))
        figures["zones_extra_cpu_s"] = figures["zones_cpu_s"] - figures["request_cpu_s_sqlite"]
    for store in STORES if wanted("idle") else ():
        idle = scenarios.idle_latency(rig, sizes.idle_samples, database=store)
        figures.update({f"idle_{key}_{store}": value for key, value in idle.items()})
    return figures


def medians(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = [figure.key for figure in FIGURES if all(figure.key in run for run in runs)]
    return {key: statistics.median(run[key] for run in runs) for key in keys}
