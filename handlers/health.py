"""Is a worker alive and keeping up? One verdict, one line, from the store alone.

Made for a liveness probe and for cron-style alerting. It reads only the store, which every
worker sharing the database writes to, so it needs neither the broker nor a worker's port:

- heartbeat: the newest heartbeat of a registered worker (each one's housekeeping thread beats
  every 2 s) is at most ``--max-heartbeat-age`` old. With ``--local`` only the workers on this
  host count, so a probe run beside a worker judges that worker, not its neighbours;
- outbox: the oldest unpublished event is at most ``--max-outbox-age`` old. The relay publishes
  within a second, so an older one means the broker is unreachable or refuses the event; the
  line says which: no event published for that long (the broker is unreachable, or the relay is
  stuck), or events refused and waiting for their next try. Events set aside (refused for good)
  are not waiting: they are named in the line, and do not fail it;
- deliveries: no message has come back ``--max-deliveries`` times in the last
  ``DELIVERIES_WINDOW``: a message that keeps coming back keeps failing intake (or killing the
  worker), until ``MAX_DELIVERIES`` dead-letters it;
- due work: no campaign has waited more than ``--max-due-age`` past its due time for a step to
  claim it (creation, or the report). Every step thread busy or stuck, or creation paused on a
  refused token, shows here;
- platform: no worker has gone without a usable answer from the platform (no connection, a
  timeout, a 5xx or a 429) for more than ``--max-platform-down`` (each worker writes what it saw
  with its heartbeat: ``handlers.platform_watch``);
- unknown outcomes: no failed campaign whose outcome is unknown has waited more than
  ``--max-unknown-age`` for an operator's ``callbridge resolve``;
- held work: no campaign has been held ``sending`` or ``reporting`` by a live worker (one whose
  heartbeat passes the first check) for longer than ``--max-step-age``: by default the call
  deadline (``HTTP_CALL_DEADLINE_SECONDS``), which ends every platform call, and a minute to
  settle the answer. A step holding one longer is stuck outside its call;
- the store itself: a SQLite store's file must exist. It is not created here (opening a
  missing SQLite file would make an empty one): a worker still running on a removed file
  stops by itself, and one started on a fresh file has lost the old requests' states.

The line is ``ok: ...``, or ``unhealthy: ...`` naming every check that failed; either way it
ends with each worker whose platform calls are paused on a refused token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from adapters.config import Settings
from adapters.store import PENDING_CREATE, State, StoreMissing, open_store, utcnow
from handlers.reasons import pauses

EXIT_OK = 0
EXIT_UNHEALTHY = 1
# Beyond the call deadline, what a step may take to settle an answer (a large report's parts).
SETTLE_MARGIN_SECONDS = 60.0
# Only messages delivered again this recently count: one taken off the queue by someone else
# stops coming back without being settled.
DELIVERIES_WINDOW = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Limits:
    """How old each figure may be, in seconds. The heartbeat limit spans many 2 s beats and a
    slow orphan settlement; the due limit spans a burst the step threads work through."""

    heartbeat: float = 30.0
    outbox: float = 120.0
    due: float = 600.0
    platform_down: float = 300.0
    unknown: float = 3600.0
    # None: HTTP_CALL_DEADLINE_SECONDS, which ends every platform call, and the settle margin.
    step: float | None = None
    deliveries: int = 3


@dataclasses.dataclass(frozen=True)
class Health:
    ok: bool
    line: str

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_UNHEALTHY


def check(settings: Settings, limits: Limits, *, host: str | None = None) -> Health:
    """Read the store's figures and judge them; a store that cannot be read is unhealthy."""
    try:
        store = open_store(settings.database_url, pool_size=1, must_exist=True)
    except StoreMissing as exc:
        return Health(False, f"unhealthy: {exc}")
    if limits.step is None:
        limits = dataclasses.replace(
            limits, step=settings.http_call_deadline_seconds + SETTLE_MARGIN_SECONDS
        )
    now = utcnow()
    try:
        workers = store.workers()
        stats = store.stats(now)
        overdue = store.overdue(now)
        unknown = store.unknown_outcomes()
        held = store.held_since(now - dt.timedelta(seconds=limits.step))
        looping = store.most_delivered(now - DELIVERIES_WINDOW)
    except sa.exc.SQLAlchemyError as exc:
        said = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()[0]
        return Health(
            False,
            f"unhealthy: cannot read the store ({said}); is DATABASE_URL right, and has a "
            "worker ever run on it?",
        )
    finally:
        store.engine.dispose()
    if host is not None:
        workers = [worker for worker in workers if worker["hostname"] == host]
    paused = [f"paused: {line}" for line in pauses(workers, now=now)]
    return assess(
        workers,
        stats,
        overdue,
        limits=limits,
        now=now,
        host=host,
        unknown=unknown,
        held=held,
        looping=looping,
        notes=paused,
    )


def assess(
    workers: Sequence[Mapping[str, Any]],
    stats: Mapping[str, Any],
    overdue: Mapping[str, tuple[int, dt.datetime]],
    *,
    limits: Limits,
    now: dt.datetime,
    host: str | None = None,
    unknown: tuple[int, dt.datetime | None] = (0, None),
    held: Sequence[Mapping[str, Any]] = (),
    looping: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> Health:
    """The verdict on the store's figures: every failed check's finding (or every finding when
    none failed), then the ``notes`` (pauses on a refused token).

    ``held``: in-flight campaigns unchanged for longer than ``limits.step``; those whose owner
    is a live worker (of ``workers``, with a heartbeat within its limit) are stuck.
    ``looping`` is the message delivered most often lately (``Store.most_delivered``).
    """
    findings = [
        _heartbeat(workers, limits.heartbeat, now, host),
        _outbox(stats, limits.outbox),
        *_set_aside(stats.get("outbox_set_aside", 0)),
        *_deliveries(looping, limits.deliveries, now),
        _due("creation", _merge(overdue, PENDING_CREATE), limits.due, now),
        _due("report", _merge(overdue, (State.CREATED,)), limits.due, now),
        _platform(workers, limits.platform_down, now),
        _unknown(*unknown, limits.unknown, now),
        _held(_held_by_live(held, workers, limits.heartbeat, now), limits.step, now),
    ]
    failed = [text for ok, text in findings if not ok]
    if failed:
        return Health(False, "unhealthy: " + "; ".join([*failed, *notes]))
    return Health(True, "ok: " + "; ".join([*(text for _, text in findings), *notes]))


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


def _outbox(stats: Mapping[str, Any], limit: float) -> tuple[bool, str]:
    backlog, oldest_age = stats["outbox_backlog"], stats["outbox_oldest_age_seconds"]
    if not backlog:
        return True, "outbox empty"
    text = f"{backlog} event(s) unpublished, the oldest for {oldest_age:.0f} s"
    if oldest_age is None or oldest_age <= limit:
        return True, text
    text = f"{text} (limit {limit:g} s)"
    last_published = stats.get("outbox_last_published_age_seconds")
    if last_published is None or last_published > limit:
        since = "ever" if last_published is None else f"for {last_published:.0f} s"
        return False, (
            f"{text}: none published {since}: the broker is unreachable or refuses it, or the "
            "relay is stuck"
        )
    refused = stats.get("outbox_refused", 0)
    return False, f"{text}: the broker refuses it ({refused} event(s) refused, tried again later)"


def _set_aside(count: int) -> list[tuple[bool, str]]:
    """Named, never failing: they wait for an operator, not for the worker."""
    if not count:
        return []
    return [(True, f"{count} event(s) set aside, refused for good (callbridge status shows why)")]


def _deliveries(
    looping: Mapping[str, Any] | None, limit: int, now: dt.datetime
) -> list[tuple[bool, str]]:
    if looping is None or looping["deliveries"] < limit:
        return []
    age = max((now - looping["last_at"]).total_seconds(), 0.0)
    return [
        (
            False,
            f"message {looping['message_key']} keeps coming back: delivered "
            f"{looping['deliveries']} times, the latest {age:.0f} s ago (limit {limit}); intake "
            "fails on it",
        )
    ]


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


def _platform(
    workers: Sequence[Mapping[str, Any]], limit: float, now: dt.datetime
) -> tuple[bool, str]:
    """The worker that has gone longest without a usable answer from the platform."""
    failing = [worker for worker in workers if worker.get("platform_failing_since")]
    if not failing:
        answered = [worker["platform_ok_at"] for worker in workers if worker.get("platform_ok_at")]
        if not answered:
            return True, "no platform call yet"
        return True, f"platform answered {max((now - max(answered)).total_seconds(), 0):.0f} s ago"
    worst = min(failing, key=lambda worker: worker["platform_failing_since"])
    age = max((now - worst["platform_failing_since"]).total_seconds(), 0.0)
    text = (
        f"platform unreachable for {age:.0f} s from worker {worst['worker_key']} "
        f"(host {worst['hostname']}): {worst.get('platform_error') or 'no answer'}"
    )
    if age > limit:
        return False, f"{text} (limit {limit:g} s)"
    return True, text


def _unknown(
    count: int, oldest: dt.datetime | None, limit: float, now: dt.datetime
) -> tuple[bool, str]:
    if not count or oldest is None:
        return True, "no unknown outcome"
    age = max((now - oldest).total_seconds(), 0.0)
    text = (
        f"{count} campaign(s) with an unknown outcome wait for `callbridge resolve`, "
        f"the oldest for {age:.0f} s"
    )
    if age > limit:
        return False, f"{text} (limit {limit:g} s)"
    return True, text


def _held_by_live(
    held: Sequence[Mapping[str, Any]],
    workers: Sequence[Mapping[str, Any]],
    heartbeat_limit: float,
    now: dt.datetime,
) -> list[Mapping[str, Any]]:
    """The held campaigns whose owner beats: a dead owner's are settled by the live workers."""
    live = {
        worker["worker_key"]
        for worker in workers
        if (now - worker["heartbeat_at"]).total_seconds() <= heartbeat_limit
    }
    return [row for row in held if row["owner"] in live]


def _held(
    held: Sequence[Mapping[str, Any]], limit: float | None, now: dt.datetime
) -> tuple[bool, str]:
    if not held:
        return True, "no campaign held too long by a step"
    longest = held[0]
    age = (now - longest["updated_at"]).total_seconds()
    return False, (
        f"{len(held)} campaign(s) held by a live worker's step for over {limit:g} s: "
        f"{_campaign(longest)} {longest['state']} for {age:.0f} s by worker "
        f"{longest['owner']} (its step is stuck)"
    )


def _campaign(row: Mapping[str, Any]) -> str:
    """A request's id, and the campaign's number in a request of several."""
    if (row.get("campaign_count") or 1) > 1:
        return f"{row['request_id']} campaign {row['group_no']}"
    return row["request_id"]


def _merge(
    overdue: Mapping[str, tuple[int, dt.datetime]], states: Sequence[str]
) -> tuple[int, dt.datetime] | None:
    """The counts and earliest due time of several states, or None when none is due."""
    found = [overdue[state] for state in states if state in overdue]
    if not found:
        return None
    return sum(count for count, _ in found), min(earliest for _, earliest in found)
