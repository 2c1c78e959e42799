"""Login attempts, rate-limited per user name and per client address, in this process's memory.

Each name and each address may fail a few times freely; past that, every failure locks it for
twice as long as the one before (30 s, 1 min, 2 min … at most 15 min), and while it is locked
even the right password is refused, so that guessing cannot go on at the pace of the answers.
A success clears the name and the address; an hour without a failure forgets them.

The counts live in memory: one console process (waitress serves it from threads) sees every
attempt; several processes behind one address would each allow their own share. The table is
bounded: past ``MAX_KEYS`` the longest-quiet entries are forgotten first.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Sequence

USER, ADDRESS = "user", "address"
# Failures allowed before the first lock: a team behind one address mistypes more than one person.
FREE_FAILURES = {USER: 5, ADDRESS: 20}
FIRST_LOCK_SECONDS = 30.0
MAX_LOCK_SECONDS = 15 * 60.0
FORGET_AFTER_SECONDS = 3600.0
MAX_KEYS = 10_000

Key = tuple[str, str]


@dataclasses.dataclass
class _Failures:
    count: int = 0
    last_at: float = 0.0
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self) -> None:
        self._entries: collections.OrderedDict[Key, _Failures] = collections.OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(name: str, address: str) -> tuple[Key, Key]:
        return (USER, name.lower()), (ADDRESS, address)

    def locked_for(self, keys: Sequence[Key], now: float) -> float:
        """Seconds until every key may try again (0 when none is locked)."""
        with self._lock:
            waits = [self._entry(key, now).locked_until - now for key in keys if key in self]
        return max([0.0, *waits])

    def failed(self, keys: Sequence[Key], now: float) -> None:
        with self._lock:
            for key in keys:
                entry = self._entry(key, now)
                entry.count += 1
                entry.last_at = now
                beyond = entry.count - FREE_FAILURES[key[0]]
                if beyond > 0:
                    lock = min(FIRST_LOCK_SECONDS * 2 ** (beyond - 1), MAX_LOCK_SECONDS)
                    entry.locked_until = now + lock
                self._entries[key] = entry
                self._entries.move_to_end(key)
            while len(self._entries) > MAX_KEYS:
                self._entries.popitem(last=False)

    def succeeded(self, keys: Sequence[Key]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def _entry(self, key: Key, now: float) -> _Failures:
        entry = self._entries.get(key)
        if entry is None or now - entry.last_at > FORGET_AFTER_SECONDS:
            return _Failures()
        return entry
