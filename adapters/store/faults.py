"""Telling a fault of the store from a fault of what was given to it.

Intake dead-letters a message that makes storing fail, and requeues one only when the store
itself failed: it could not be reached, dropped the connection, or did not grant a lock in time.
Those surface as these SQLAlchemy errors; anything else a statement raises (a value a column
cannot hold, a constraint, an encoding error) is about the data, and would fail again.
"""

from __future__ import annotations

import sqlalchemy as sa

_STORE_FAULTS = (
    sa.exc.OperationalError,  # unreachable, connection lost, "database is locked", lock timeout
    sa.exc.InterfaceError,  # the driver's connection is closed
    sa.exc.TimeoutError,  # no pooled connection came free in time
    sa.exc.DisconnectionError,
    sa.exc.PendingRollbackError,  # a connection invalidated in the middle of a transaction
)
_SHOWN_CHARS = 200


def is_store_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the store failing, worth the same work again later."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _STORE_FAULTS)


def describe_store_fault(exc: BaseException) -> str:
    """One line about a store error: the driver's own message, without SQLAlchemy's echo of the
    statement and its parameters (which may hold a request's phones)."""
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    first_line = (str(cause).strip().splitlines() or [""])[0][:_SHOWN_CHARS]
    return f"{type(cause).__name__}: {first_line}" if first_line else type(cause).__name__
