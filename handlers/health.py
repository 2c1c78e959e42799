"""Is a worker alive and keeping up? One verdict, one line, from the store alone.

Made for a liveness probe and for cron-style alerting. It reads only the store, which every
worker sharing the database writes to, so it needs neither the broker nor a worker's port:

- heartbeat: the newest heartbeat of a registered worker (each one's housekeeping thread beats
  every 2 s) is at most ``--max-heartbeat-age`` old. With ``--local`` only the workers on this
  host count, so a probe run beside a worker judges that worker, not its neighbours;
- outbox: the oldest unpublished event is at most ``--max-outbox-age`` old. The relay publishes
  within a second, so an older one means the broker is unreachable or refuses the event;
- due work: no campaign has waited more than ``--max-due-age`` past its due time for a step to
  claim it (creation, or the report). Every step thread busy or stuck, or creation paused on a
  refused token, shows here.

The line is ``ok: ...``, or ``unhealthy: ...`` naming every check that failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from adapters.config import Settings
from adapters.store import PENDING_CREATE, State, open_store, utcnow

EXIT_OK = 0
EXIT_UNHEALTHY = 1


@dataclasses.dataclass(frozen=True)
class Limits:
    """How old each figure may be, in seconds. The heartbeat limit spans many 2 s beats and a
    slow orphan settlement; the due limit spans a burst the step threads work through."""

    heartbeat: float = 30.0
    outbox: float = 120.0
    due: float = 600.0


@dataclasses.dataclass(frozen=True)
class Health:
    ok: bool
    line: str

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_UNHEALTHY


def check(settings: Settings, limits: Limits, *, host: str | None = None) -> Health:
    """Read the store's figures and judge them; a store that cannot be read is unhealthy."""
    store = open_store(settings.database_url, pool_size=1)
    now = utcnow()
    try:
        workers = store.workers()
        stats = store.stats(now)
        overdue = store.overdue(now)
    except sa.exc.SQLAlchemyError as exc:
        return Health(
            False,
            f"unhealthy: cannot read the store ({type(exc).__name__}); is DATABASE_URL right, "
            "and has a worker ever run on it?",
        )
    finally:
        store.engine.dispose()
    if host is not None:
        workers = [worker for worker in workers if worker["hostname"] == host]
    return assess(workers, stats, overdue, limits=limits, now=now, host=host)


def assess(
    workers: Sequence[Mapping[str, Any]],
    stats: Mapping[str, Any],
    overdue: Mapping[str, tuple[int, dt.datetime]],
    *,
    limits: Limits,
    now: dt.datetime,
    host: str | None = None,
) -> Health:
    """The verdict on the store's figures: every check's finding, failures first."""
    findings = [
        _heartbeat(workers, limits.heartbeat, now, host),
        _outbox(stats["outbox_backlog"], stats["outbox_oldest_age_seconds"], limits.outbox),
        _due("creation", _merge(overdue, PENDING_CREATE), limits.due, now),
        _due("report", _merge(overdue, (State.CREATED,)), limits.due, now),
    ]
    failed = [text for ok, text in findings if not ok]
    if failed:
        return Health(False, "unhealthy: " + "; ".join(failed))
    return Health(True, "ok: " + "; ".join(text for _, text in findings))


def _heartbeat(
    workers: Sequence[Mapping[str, Any]], limit: float, now: dt.datetime, host: str | None
) -> tuple[bool, str]:
    where = f"on host {host}" if host is not None else "on this database"
    if not workers:
        return False, f"no worker is registered {where}"
    newest = max(workers, key=lambda worker: worker["heartbeat_at"])
    age = (now - newest["heartbeat_at"]).total_seconds()
    who = f"worker {newest['worker_key']} (host {newest['hostname']}, pid {newest['pid']})"
    if age > limit:
        return False, f"newest heartbeat {where} is {age:.0f} s old, from {who} (limit {limit:g} s)"
    return True, f"{who} beat {max(age, 0.0):.1f} s ago"


def _outbox(backlog: int, oldest_age: float | None, limit: float) -> tuple[bool, str]:
    if not backlog:
        return True, "outbox empty"
    text = f"{backlog} event(s) unpublished, the oldest for {oldest_age:.0f} s"
    if oldest_age is not None and oldest_age > limit:
        return False, f"{text} (limit {limit:g} s): the broker is unreachable or refuses it"
    return True, text


def _due(
    step: str, overdue: tuple[int, dt.datetime] | None, limit: float, now: dt.datetime
) -> tuple[bool, str]:
    if overdue is None:
        return True, f"no {step} due"
    count, earliest = overdue
    age = max((now - earliest).total_seconds(), 0.0)
    text = f"{count} campaign(s) due for {step}, the longest waiting {age:.0f} s"
    if age > limit:
        return False, f"{text} (limit {limit:g} s)"
    return True, text


def _merge(
    overdue: Mapping[str, tuple[int, dt.datetime]], states: Sequence[str]
) -> tuple[int, dt.datetime] | None:
    """The counts and earliest due time of several states, or None when none is due."""
    found = [overdue[state] for state in states if state in overdue]
    if not found:
        return None
    return sum(count for count, _ in found), min(earliest for _, earliest in found)
