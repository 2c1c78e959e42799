"""The durable state of every call request, and the outbox of result events.

The broker is only the transport: a request is acked once its row is committed here, every
step of its life is a state change committed here, and every event to publish is a row here
until its publisher confirm arrives. A crash at any instant therefore loses nothing, and a
state change made in one transaction with its event can never be half done.

The store is SQLAlchemy Core over SQLite (one worker process) or PostgreSQL (any number), in
parts: the tables and their migrations, the engine, a request and its outcome (``requests``),
the life of each campaign a request was planned as (``campaigns``), the outbox, the registered
workers, the count of messages delivered again, the read models that health, metrics and the
operator's commands show, the console's lists (``browse``), the attempts log of every platform
call, and the audit log of what operators did. ``Store`` is all of them over one engine.
"""

from __future__ import annotations

from adapters.store.attempts import CREATE, REPORT, Attempt, Attempts
from adapters.store.audit import Audit, AuditEntry
from adapters.store.browse import Browse
from adapters.store.campaigns import SettleConflict
from adapters.store.deliveries import Deliveries
from adapters.store.engine import StoreMissing, create_engine
from adapters.store.faults import describe_store_fault, is_store_fault
from adapters.store.migrations import Migrations
from adapters.store.outbox import Outbox, Settlement
from adapters.store.read_models import ReadModels
from adapters.store.records import (
    CampaignRow,
    Event,
    NewCampaign,
    NewRequest,
    PendingEvent,
    PlatformView,
    RequestRow,
    utcnow,
)
from adapters.store.requests import Requests
from adapters.store.states import IN_FLIGHT, PENDING_CREATE, UNSETTLED, State
from adapters.store.workers import Workers

__all__ = [
    "CREATE",
    "IN_FLIGHT",
    "PENDING_CREATE",
    "REPORT",
    "UNSETTLED",
    "Attempt",
    "AuditEntry",
    "CampaignRow",
    "Event",
    "NewCampaign",
    "NewRequest",
    "PendingEvent",
    "PlatformView",
    "RequestRow",
    "SettleConflict",
    "Settlement",
    "State",
    "Store",
    "StoreMissing",
    "describe_store_fault",
    "is_store_fault",
    "open_store",
    "utcnow",
]


class Store(Migrations, Workers, Requests, Outbox, Deliveries, ReadModels, Audit, Attempts, Browse):
    """Every part of the store over one engine."""


def open_store(database_url: str, *, pool_size: int = 5, must_exist: bool = False) -> Store:
    """The store at ``database_url``. The worker makes it if need be; an operator's command
    passes ``must_exist``, so that it never answers from an empty store it just made."""
    return Store(create_engine(database_url, pool_size=pool_size, must_exist=must_exist))
