"""What the creation and report steps share inside one worker process."""

from __future__ import annotations

import dataclasses
import threading

from worker.auth_gate import AuthGate
from worker.config import Settings
from worker.platform import PlatformClient
from worker.store import Store


@dataclasses.dataclass
class StepContext:
    settings: Settings
    store: Store
    platform: PlatformClient
    owner: int  # this process's worker key: the owner of the rows it claims
    gate: AuthGate = dataclasses.field(default_factory=AuthGate)
    # Set after a commit that queued events, so the relay publishes without waiting to poll.
    outbox_ready: threading.Event = dataclasses.field(default_factory=threading.Event)
    # Request ids this process is working on right now; a row it owns that is not here was
    # left behind by a step that crashed, and is settled like a dead worker's.
    in_flight: set[str] = dataclasses.field(default_factory=set)
    in_flight_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
