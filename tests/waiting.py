"""Waiting on state, never on time: poll until what a test expects holds, or fail naming it.

A fixed sleep is a bet on the machine's speed: too short on a busy one, and the test fails for
nothing; long enough, and "nothing more happened" is proved only inside its window. A test
waits instead for a state that shows the thing happened, or that implies it would have.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Longer than the slowest start of a worker subprocess on a busy machine, far shorter than a
# hung test: a state that does not come within it is not coming.
DEFAULT_TIMEOUT_SECONDS = 30.0
SHOWN_CHARACTERS = 2000


def eventually(
    check: Callable[[], T],
    *,
    what: str | Callable[[], str],
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    interval: float = 0.05,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    After ``timeout`` seconds, fail with ``what`` was awaited (a callable is asked only then,
    so it can show a log as it was at the end) and the last value ``check`` returned. An
    exception from ``check`` is not retried: it fails the test at once, as it would without
    the wait.
    """
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            awaited = what() if callable(what) else what
            last = repr(value)
            if len(last) > SHOWN_CHARACTERS:
                last = last[:SHOWN_CHARACTERS] + "…"
            raise AssertionError(f"waited {timeout:g} s for {awaited}; last seen: {last}")
        time.sleep(interval)
    return value
