"""The pause on campaign creation while the platform refuses our token.

A 401/403 says nothing about the request, everything about our credentials: no request may be
failed for it. The first refusal closes the gate; creation threads then claim nothing until
the pause is over, when they try again (the pause doubles while refusals go on). The first
success opens the gate again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

FIRST_PAUSE_SECONDS = 5.0
MAX_PAUSE_SECONDS = 300.0


class AuthGate:
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

    @property
    def paused(self) -> bool:
        return self._pause > 0

    def allows(self) -> bool:
        """True when creation may go on: no pause, or a pause that is over (time to retry)."""
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
