"""When to try a platform call again, and when to stop: the one place that decides.

The platform client only says what an answer *was* (created, nothing sent, refused, unknown,
token refused). What the worker does about it is decided here, for every caller alike:

- the backoff: exponential with jitter, so that requests which failed together do not come
  back together, and never sooner than the platform's ``Retry-After``;
- the budget: how long tries may go on (``RETRY_MAX_MINUTES`` from a request's first attempt,
  ``REPORT_RETRY_HOURS`` from a report's due time);
- the auth pause: a refused token says nothing about the request, so no request is failed for
  it; the whole process pauses its calls instead, the pause doubling while refusals go on;
- for creation, what each answer means (``CreationPolicy.decide``): only an answer proving
  that nothing was created may be tried again.

The math is pure (no clock, no randomness unless asked for), so it is tested without sockets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from adapters.platform_client import (
    AuthFailed,
    Created,
    CreateOutcome,
    NotCreated,
    RetryLater,
    Unknown,
)

DEFAULT_BASE = 1.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX_DELAY = 300.0
DEFAULT_JITTER = 0.5
# A Retry-After longer than this is not waited out in full: the retry deadline
# (RETRY_MAX_MINUTES, one hour by default) would pass first anyway.
DEFAULT_MAX_RETRY_AFTER = 3600.0

FIRST_PAUSE_SECONDS = 5.0
MAX_PAUSE_SECONDS = 300.0


def compute_backoff(
    attempt: int,
    *,
    base: float = DEFAULT_BASE,
    factor: float = DEFAULT_FACTOR,
    max_delay: float = DEFAULT_MAX_DELAY,
    jitter: float = DEFAULT_JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (counting from 1).

    The delay grows as ``base * factor ** (attempt - 1)`` up to ``max_delay``; jitter then takes
    away up to ``jitter`` of it (``rand()`` in [0, 1)), so the delay never exceeds the cap and
    never drops below ``(1 - jitter)`` of the exponential value.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if base <= 0 or factor < 1 or max_delay < 0 or not 0 <= jitter <= 1:
        raise ValueError("need base > 0, factor >= 1, max_delay >= 0 and 0 <= jitter <= 1")
    delay = _exponential(attempt - 1, base=base, factor=factor, max_delay=max_delay)
    return delay * (1 - jitter * rand())


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
    **backoff_kw: Any,
) -> float:
    """Seconds to wait before the next attempt: the backoff, but never sooner than Retry-After.

    The platform's Retry-After wins when it is longer than the backoff, up to
    ``max_retry_after``; a server asking for a day is not waited out past the retry deadline.
    """
    delay = compute_backoff(attempt, **backoff_kw)
    if retry_after is None:
        return delay
    return max(delay, min(retry_after, max_retry_after))


def _exponential(exponent: int, *, base: float, factor: float, max_delay: float) -> float:
    """``base * factor ** exponent`` capped at ``max_delay``, without overflowing."""
    if factor > 1 and exponent * math.log(factor) >= math.log(max_delay / base + 1):
        return max_delay
    return min(base * factor**exponent, max_delay)


@dataclasses.dataclass(frozen=True)
class RetryBudget:
    """How long tries may go on (``span`` from a starting moment), and how far apart at most."""

    span: dt.timedelta
    max_delay: float = DEFAULT_MAX_DELAY

    def next_try(
        self,
        attempt: int,
        *,
        since: dt.datetime,
        now: dt.datetime,
        retry_after: float | None,
        bounded: bool = True,
        rand: Callable[[], float] = random.random,
    ) -> dt.datetime | None:
        """When to try after failed attempt ``attempt``; None once that would be past the
        budget (``since + span``), unless this failure is not ``bounded`` by it."""
        delay = retry_delay(attempt, retry_after=retry_after, max_delay=self.max_delay, rand=rand)
        when = now + dt.timedelta(seconds=delay)
        return None if bounded and when > since + self.span else when


class AuthGate:
    """The pause on platform calls while the platform refuses our token.

    The first refusal closes the gate; callers then make no call until the pause is over, when
    they try again (the pause doubles while refusals go on). The first answer given past the
    platform's authentication opens the gate again.
    """

    def __init__(
        self,
        *,
        first_pause: float = FIRST_PAUSE_SECONDS,
        max_pause: float = MAX_PAUSE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._first_pause = first_pause
        self._max_pause = max_pause
        self._clock = clock
        self._lock = threading.Lock()
        self._pause = 0.0
        self._until = 0.0

    def allows(self) -> bool:
        """True when calls may go on: no pause, or a pause that is over (time to retry)."""
        return self._clock() >= self._until

    def seconds_left(self) -> float:
        return max(0.0, self._until - self._clock())

    def refused(self) -> bool:
        """Record a refusal; True when it starts a pause (report it once, not per retry)."""
        with self._lock:
            starting = self._pause == 0
            if not starting and self._clock() < self._until:
                return False  # another thread's refusal already set this pause
            self._pause = self._first_pause if starting else min(self._pause * 2, self._max_pause)
            self._until = self._clock() + self._pause
            return starting

    def accepted(self) -> bool:
        """Record that the platform took the token; True when it ends a pause."""
        with self._lock:
            ending = self._pause > 0
            self._pause = 0.0
            self._until = 0.0
            return ending


@dataclasses.dataclass(frozen=True)
class Accept:
    """The platform created the campaign."""

    campaign_id: int
    resumed: bool = False  # this answer ended an auth pause


@dataclasses.dataclass(frozen=True)
class RetryAt:
    """Nothing was created: send it again at ``when``."""

    when: dt.datetime
    status: int | None
    message: str


@dataclasses.dataclass(frozen=True)
class Fail:
    """The request ends ``campaign.failed`` with this outcome."""

    outcome: Literal["not_created", "unknown"]
    status: int | None
    message: str
    resumed: bool = False


@dataclasses.dataclass(frozen=True)
class Pause:
    """The token was refused: put the request back untouched and pause creation."""

    status: int
    message: str
    starts_pause: bool  # report the pause once, not at every refused retry
    seconds: float


Decision = Accept | RetryAt | Fail | Pause


class CreationPolicy:
    """What each answer to ``POST /api/campaigns`` means for the request that was sent.

    The answers and their outcomes are guarantee 4 of the contract: a campaign that may exist
    is never sent again, only an answer proving nothing was created is retried, and only within
    ``budget`` from the request's first attempt. A refused token pauses every creation call of
    the process (``gate``); the attempt it cost does not count.
    """

    def __init__(self, *, budget: RetryBudget, gate: AuthGate):
        self.budget = budget
        self.gate = gate

    def decide(
        self,
        outcome: CreateOutcome,
        *,
        attempt: int,
        first_attempt_at: dt.datetime,
        now: dt.datetime,
    ) -> Decision:
        match outcome:
            case Created(campaign_id=campaign_id):
                return Accept(campaign_id, resumed=self.gate.accepted())
            case AuthFailed(status=status, message=message):
                starts = self.gate.refused()
                return Pause(status, message, starts, self.gate.seconds_left())
            case RetryLater(status=status, message=message, retry_after=retry_after):
                when = self.budget.next_try(
                    attempt, since=first_attempt_at, now=now, retry_after=retry_after
                )
                if when is None:
                    minutes = self.budget.span.total_seconds() / 60
                    gave_up = (
                        f"the platform stayed unavailable for {minutes:g} minutes "
                        f"({attempt} attempts): {message}"
                    )
                    return Fail("not_created", status, gave_up)
                return RetryAt(when, status, message)
            case NotCreated(status=status, message=message):
                # An answer given past authentication proves the token works again; a dropped
                # connection or a proxy's 503 says nothing about it.
                return Fail("not_created", status, message, resumed=self.gate.accepted())
            case Unknown(status=status, message=message):
                return Fail("unknown", status, message)
        raise TypeError(f"unexpected creation outcome {outcome!r}")
