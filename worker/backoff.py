"""When to try a platform call again: exponential backoff with jitter, honouring Retry-After.

Pure functions, so the policy is tested without clocks or sockets and the callers (the create
and report steps) only store the time they compute. Jitter spreads the retries of many requests
that failed together, so a platform coming back from an outage is not hit by all of them at once.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

DEFAULT_BASE = 1.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX_DELAY = 300.0
DEFAULT_JITTER = 0.5
# A Retry-After longer than this is not waited out in full: the retry deadline
# (RETRY_MAX_MINUTES, one hour by default) would pass first anyway.
DEFAULT_MAX_RETRY_AFTER = 3600.0

_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


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


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date), or None.

    A date in the past means "now" (0). A value that is neither form is ignored (None) rather
    than trusted: the backoff alone then decides.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def _exponential(exponent: int, *, base: float, factor: float, max_delay: float) -> float:
    """``base * factor ** exponent`` capped at ``max_delay``, without overflowing."""
    if factor > 1 and exponent * math.log(factor) >= math.log(max_delay / base + 1):
        return max_delay
    return min(base * factor**exponent, max_delay)
