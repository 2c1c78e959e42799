"""The worker processes registered on the store, and their heartbeats."""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapters.store.engine import Database
from adapters.store.records import PlatformView, naive, utcnow
from adapters.store.states import IN_FLIGHT
from adapters.store.tables import campaigns_table, workers_table


class Workers(Database):
    def register_worker(self, *, hostname: str, pid: int) -> int:
        now = naive(utcnow())
        with self.transaction() as conn:
            return conn.execute(
                workers_table.insert()
                .values(hostname=hostname, pid=pid, started_at=now, heartbeat_at=now)
                .returning(workers_table.c.worker_key)
            ).scalar_one()

    def heartbeat(self, worker_key: int, view: PlatformView | None = None) -> None:
        """Beat, and show what the worker has seen of the platform (when given)."""
        shown = (
            {}
            if view is None
            else {field.name: getattr(view, field.name) for field in dataclasses.fields(view)}
        )
        values = {
            name: naive(value) if isinstance(value, dt.datetime) else value
            for name, value in shown.items()
        }
        with self.transaction() as conn:
            conn.execute(
                workers_table.update()
                .where(workers_table.c.worker_key == worker_key)
                .values(heartbeat_at=naive(utcnow()), **values)
            )

    def unregister_worker(self, worker_key: int) -> None:
        with self.transaction() as conn:
            self.forget_worker(conn, worker_key)

    def other_owners(self, exclude: int) -> list[int]:
        """Every other worker that is registered or holds in-flight rows: those to check on."""
        in_flight = sa.select(campaigns_table.c.owner).where(
            campaigns_table.c.state.in_(IN_FLIGHT), campaigns_table.c.owner != exclude
        )
        registered = sa.select(workers_table.c.worker_key).where(
            workers_table.c.worker_key != exclude
        )
        with self.reading() as conn:
            return sorted(conn.execute(sa.union(in_flight, registered)).scalars())

    def forget_worker(self, conn: Connection, worker_key: int) -> None:
        conn.execute(workers_table.delete().where(workers_table.c.worker_key == worker_key))
