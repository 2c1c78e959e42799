"""The overview: how the requests fare, whether events go out and the workers live, what the
platform answers, and ``callbridge health``'s verdict. It refreshes itself every
``REFRESH_SECONDS``; its figures are read at most once per ``FIGURES_SECONDS`` for every
viewer together, in the background (``Console.cached``), and the page says how old they are."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, render_template

from adapters.config import BROKER, PLATFORM, QUEUES, STORE, where
from adapters.store import CREATE, REPORT, Attempt, State, utcnow
from console.app import Console, console
from handlers.health import Health, Limits, check
from handlers.reasons import pauses

blueprint = Blueprint("overview", __name__)

REFRESH_SECONDS = 15
FIGURES_SECONDS = 10.0
WINDOWS = (("24 h", dt.timedelta(hours=24)), ("7 d", dt.timedelta(days=7)))
PLATFORM_WINDOW = dt.timedelta(hours=1)
STATES = (State.PENDING, State.CREATED, State.FAILED, State.REJECTED)


@dataclasses.dataclass(frozen=True)
class Figures:
    at: dt.datetime
    health: Health
    by_state: dict[str, dict[str, int]]  # window label -> state -> count
    outbox: tuple[int, dt.datetime | None]  # events waiting, and since when the oldest
    reports_due: int
    unknown: tuple[int, dt.datetime | None]
    workers: list[dict[str, Any]]
    paused: list[str]
    platform: list[PlatformCalls]


@dataclasses.dataclass(frozen=True)
class PlatformCalls:
    """The platform calls of one kind over the last ``PLATFORM_WINDOW``: their latency and
    how they were answered."""

    kind: str
    count: int
    p50: float | None
    p95: float | None
    outcomes: dict[str, int]

    @classmethod
    def of(cls, kind: str, attempts: Sequence[Attempt]) -> PlatformCalls:
        seconds = sorted(attempt.seconds for attempt in attempts)
        return cls(
            kind,
            len(seconds),
            _quantile(seconds, 0.5),
            _quantile(seconds, 0.95),
            dict(collections.Counter(attempt.outcome for attempt in attempts).most_common()),
        )


@blueprint.get("/")
def overview():
    tools = console()
    figures, figures_age = tools.cached("overview", FIGURES_SECONDS, lambda: read_figures(tools))
    return render_template(
        "overview.html",
        figures=figures,
        windows=[label for label, _ in WINDOWS],
        states=STATES,
        refresh=REFRESH_SECONDS,
        figures_age=figures_age,
        using=where(tools.settings, (STORE, BROKER, PLATFORM, QUEUES)),
    )


def read_figures(tools: Console) -> Figures:
    store = tools.store
    now = utcnow()
    workers = store.workers()
    return Figures(
        at=now,
        health=check(tools.settings, Limits()),
        by_state={label: store.requests_by_state_since(now - span) for label, span in WINDOWS},
        outbox=store.outbox_waiting(),
        reports_due=store.overdue(now).get(State.CREATED, (0, None))[0],
        unknown=store.unknown_outcomes(),
        workers=workers,
        paused=pauses(workers, now=now),
        platform=platform_calls(store.attempts_since(now - PLATFORM_WINDOW)),
    )


def platform_calls(attempts: Sequence[Attempt]) -> list[PlatformCalls]:
    return [
        PlatformCalls.of(kind, [attempt for attempt in attempts if attempt.kind == kind])
        for kind in (CREATE, REPORT)
    ]


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (nearest rank), None of none."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
