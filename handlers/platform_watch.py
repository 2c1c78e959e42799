"""What a worker has seen of the platform lately, kept where ``health`` and ``status`` read it.

Every platform call of the step threads goes through ``WatchedPlatform``, which notes whether
the platform gave a usable answer. The housekeeping thread writes the view with the worker's
heartbeat (``PlatformWatch.view``), so that within one beat the store shows since when the
platform has been unreachable and why, and whether calls are paused on a refused token. Noting
an answer costs a lock, not a database write per call.

Unreachable: no connection, no answer, a 5xx or a 429. Any other answer — a 4xx included — came
from a platform that is there. A 401/403 also starts (or continues) the pause on the token,
which the next answer past authentication ends.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping

from adapters.config import Settings
from adapters.logs import redact
from adapters.platform_client import (
    AuthFailed,
    Created,
    CreateOutcome,
    Observer,
    PlatformClient,
    ReportFetched,
    ReportOutcome,
)
from adapters.store import PlatformView, utcnow

ERROR_LIMIT = 255
TOO_MANY_REQUESTS = 429
FIRST_SERVER_ERROR = 500


def reached(outcome: CreateOutcome | ReportOutcome) -> bool:
    """Whether the platform itself answered (a usable answer, or a refusal of the request)."""
    if isinstance(outcome, Created | ReportFetched):
        return True
    status = outcome.status
    return status is not None and status < FIRST_SERVER_ERROR and status != TOO_MANY_REQUESTS


class PlatformWatch:
    """The answers one worker process got, shared by its step threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ok_at: dt.datetime | None = None
        self._failing_since: dt.datetime | None = None
        self._error: str | None = None
        self._refused_since: dt.datetime | None = None
        self._refused_status: int | None = None

    def saw(self, outcome: CreateOutcome | ReportOutcome, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        with self._lock:
            if isinstance(outcome, AuthFailed):
                self._refused_since = self._refused_since or now
                self._refused_status = outcome.status
            elif reached(outcome):
                self._refused_since = self._refused_status = None
            if reached(outcome):
                self._ok_at, self._failing_since, self._error = now, None, None
                return
            self._failing_since = self._failing_since or now
            answer = f"HTTP {outcome.status}" if outcome.status is not None else "no answer"
            self._error = redact(f"{answer}: {outcome.message}")[:ERROR_LIMIT]

    def view(self, *, pause_left: float, now: dt.datetime | None = None) -> PlatformView:
        """What the heartbeat shows; ``pause_left``: seconds until the paused calls try again."""
        now = now or utcnow()
        with self._lock:
            paused = self._refused_since is not None
            return PlatformView(
                platform_ok_at=self._ok_at,
                platform_failing_since=self._failing_since,
                platform_error=self._error,
                paused_since=self._refused_since,
                paused_until=now + dt.timedelta(seconds=pause_left) if paused else None,
                pause_status=self._refused_status,
            )


class WatchedPlatform(PlatformClient):
    """The platform client, telling ``watch`` how each call went."""

    def __init__(
        self, settings: Settings, *, watch: PlatformWatch, observe: Observer | None = None
    ) -> None:
        super().__init__(settings, observe=observe)
        self._watch = watch

    def create_campaign(self, body: bytes) -> CreateOutcome:
        outcome = super().create_campaign(body)
        self._watch.saw(outcome)
        return outcome

    def fetch_report(self, project_id: int, body: Mapping) -> ReportOutcome:
        outcome = super().fetch_report(project_id, body)
        self._watch.saw(outcome)
        return outcome
