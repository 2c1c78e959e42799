"""Which worker processes are alive, so that only the dead ones' in-flight work is settled.

A request left ``sending`` by a worker that died must be failed with an unknown outcome; one
left ``sending`` by a worker that is merely slow must not be touched. Heartbeats with a lease
would have to guess; instead each worker holds a lock for as long as its process lives and the
operating system or the database server releases it the instant the process dies:

- PostgreSQL: a session advisory lock on the worker's key, held on a connection of its own.
- SQLite: an exclusive ``flock`` on a file beside the database; it also keeps a second worker
  process off a SQLite store, which only one process may serve. The lock file is named after
  the database file's real path (``<real path>.lock``), so a second worker reaching the same
  file through a symlink is refused, and two databases in one folder never share a lock.

A SQLite store can also vanish under a running worker (its file or folder removed, or replaced
by a restore): the worker would go on writing to a file nobody will ever open again, and the
next worker would start on an empty store. ``store_gone`` notices, for the worker to stop.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa

from adapters.config import ConfigError
from adapters.store import Store

ADVISORY_NAMESPACE = 7407


class Liveness(Protocol):
    worker_key: int

    def dead_owners(self, owners: Sequence[int]) -> list[int]: ...

    def alive(self) -> bool: ...

    def store_gone(self) -> str | None:
        """Why the store this worker opened is no longer there; None while it is."""
        ...

    def close(self) -> None: ...


class AnotherWorkerRunning(ConfigError):
    """A SQLite store is already served by a live worker process: DATABASE_URL must change."""


class SqliteLiveness:
    def __init__(self, store: Store, worker_key: int):
        self.worker_key = worker_key
        self._database = pathlib.Path(store.engine.url.database or "callbridge.db")
        real = self._database.resolve()
        self._opened = _identity(real)
        self._file = open(real.with_name(real.name + ".lock"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            through = "" if real == self._database.absolute() else f" (through {self._database})"
            raise AnotherWorkerRunning(
                f"DATABASE_URL: another callbridge worker is running on {real}{through}; SQLite "
                "serves one worker process (use PostgreSQL for more)"
            ) from None
        self._file.truncate(0)
        self._file.write(str(os.getpid()))
        self._file.flush()

    def store_gone(self) -> str | None:
        """The database file must still be at its path, and be the file opened at start."""
        try:
            found = _identity(self._database)
        except FileNotFoundError:
            return f"the SQLite store {self._database} is gone (its file or folder was removed)"
        if found != self._opened:
            return f"the SQLite store {self._database} was replaced by another file"
        return None

    def dead_owners(self, owners: Sequence[int]) -> list[int]:
        # We hold the only lock: every other owner belonged to a process that has ended.
        return [owner for owner in owners if owner != self.worker_key]

    def alive(self) -> bool:
        return not self._file.closed

    def close(self) -> None:
        self._file.close()


class PostgresLiveness:
    def __init__(self, store: Store, worker_key: int):
        self.worker_key = worker_key
        self._conn = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._conn.execute(
            sa.text("SELECT pg_advisory_lock(:ns, :key)"),
            {"ns": ADVISORY_NAMESPACE, "key": worker_key},
        )

    def dead_owners(self, owners: Sequence[int]) -> list[int]:
        dead = []
        for owner in owners:
            if owner == self.worker_key:
                continue
            taken = self._conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:ns, :key)"),
                {"ns": ADVISORY_NAMESPACE, "key": owner},
            ).scalar()
            if taken:
                # Nobody holds it: its process is gone. Release at once; a dead key is never
                # reused (keys come from a sequence).
                self._conn.execute(
                    sa.text("SELECT pg_advisory_unlock(:ns, :key)"),
                    {"ns": ADVISORY_NAMESPACE, "key": owner},
                )
                dead.append(owner)
        return dead

    def store_gone(self) -> str | None:
        return None  # a database server's store does not vanish from under its connections

    def alive(self) -> bool:
        """False when the connection holding our lock is gone (and with it the lock)."""
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            return False
        return True

    def close(self) -> None:
        self._conn.close()


def _identity(path: pathlib.Path) -> tuple[int, int]:
    """The file a path names (through symlinks): its device and inode."""
    found = path.stat()
    return found.st_dev, found.st_ino


def hold_liveness(store: Store, worker_key: int) -> Liveness:
    if store.dialect == "sqlite":
        return SqliteLiveness(store, worker_key)
    return PostgresLiveness(store, worker_key)
