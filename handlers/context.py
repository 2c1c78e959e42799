"""What the creation and report steps share inside one worker process."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import threading
from collections.abc import Iterator

from adapters.config import Settings
from adapters.platform_client import PlatformClient
from adapters.store import Store
from handlers.retry_policy import AuthGate, CreationPolicy, RetryBudget


@dataclasses.dataclass
class StepContext:
    settings: Settings
    store: Store
    platform: PlatformClient
    owner: int  # this process's worker key: the owner of the rows it claims
    gate: AuthGate = dataclasses.field(default_factory=AuthGate)
    # Set after a commit that queued events, so the relay publishes without waiting to poll.
    outbox_ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    # The campaigns (row ids) this process is working on right now; a row it owns that is not
    # here was left behind by a step that crashed, and is settled like a dead worker's.
    in_flight: set[int] = dataclasses.field(default_factory=set)
    in_flight_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @functools.cached_property
    def creation_policy(self) -> CreationPolicy:
        budget = RetryBudget(dt.timedelta(minutes=self.settings.retry_max_minutes))
        return CreationPolicy(budget=budget, gate=self.gate)

    @contextlib.contextmanager
    def working_on(self, row_id: int) -> Iterator[None]:
        """Mark a claimed campaign as this process's own work for as long as the block runs."""
        with self.in_flight_lock:
            self.in_flight.add(row_id)
        try:
            yield
        finally:
            with self.in_flight_lock:
                self.in_flight.discard(row_id)

    def is_working_on(self, row_id: int) -> bool:
        with self.in_flight_lock:
            return row_id in self.in_flight
