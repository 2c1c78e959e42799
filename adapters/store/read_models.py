"""Read models over the store: what health, metrics and the operator's commands show."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from adapters.store.campaigns import REPORT_MAY_START
from adapters.store.engine import Database
from adapters.store.records import aware, naive, utcnow
from adapters.store.states import PENDING_CREATE, State
from adapters.store.tables import campaigns_table, outbox_table, requests_table, workers_table


class ReadModels(Database):
    def workers(self) -> list[dict[str, Any]]:
        """Registered worker processes with their last heartbeat, for ``callbridge health``.

        A worker that stopped cleanly is gone; a killed one stays until a live one settles it.
        """
        with self.reading() as conn:
            rows = conn.execute(sa.select(workers_table).order_by(workers_table.c.worker_key))
            return [
                {
                    **row._asdict(),
                    "started_at": aware(row.started_at),
                    "heartbeat_at": aware(row.heartbeat_at),
                }
                for row in rows
            ]

    def events_of(self, request_id: str) -> list[dict[str, Any]]:
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(
                    outbox_table.c.event_id,
                    outbox_table.c.event_type,
                    outbox_table.c.queue,
                    outbox_table.c.created_at,
                    outbox_table.c.published_at,
                )
                .where(outbox_table.c.request_id == request_id)
                .order_by(outbox_table.c.id)
            )
            return [
                {
                    **row._asdict(),
                    "created_at": aware(row.created_at),
                    "published_at": aware(row.published_at),
                }
                for row in rows
            ]

    def stats(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Figures for metrics and health: backlog, oldest unsent event, requests and campaigns
        by state, reports due."""
        now = now or utcnow()
        with self.reading() as conn:
            backlog, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(outbox_table.c.created_at)).where(
                    outbox_table.c.published_at.is_(None)
                )
            ).one()
            by_state = {
                table.name: dict(
                    conn.execute(
                        sa.select(table.c.state, sa.func.count()).group_by(table.c.state)
                    ).all()
                )
                for table in (requests_table, campaigns_table)
            }
            reports_due = conn.execute(
                sa.select(sa.func.count()).where(
                    campaigns_table.c.state == State.CREATED,
                    campaigns_table.c.report_due_at <= naive(now),
                    REPORT_MAY_START,
                )
            ).scalar_one()
        return {
            "outbox_backlog": backlog,
            "outbox_oldest_age_seconds": None
            if oldest is None
            else max(0.0, (now - aware(oldest)).total_seconds()),
            "requests_by_state": by_state[requests_table.name],
            "campaigns_by_state": by_state[campaigns_table.name],
            "reports_due": reports_due,
        }

    def overdue(self, now: dt.datetime) -> dict[str, tuple[int, dt.datetime]]:
        """Campaigns a step may claim now, by state: how many, and the earliest due time.

        For ``callbridge health``: a due campaign that no worker claims for long means no step
        thread is taking work (all busy, stuck, paused on a refused token, or no worker). A report
        waiting for its request's other campaigns to be settled is not due yet.
        """
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(
                    campaigns_table.c.state,
                    sa.func.count(),
                    sa.func.min(campaigns_table.c.next_attempt_at),
                )
                .where(
                    sa.or_(
                        campaigns_table.c.state.in_(PENDING_CREATE),
                        sa.and_(campaigns_table.c.state == State.CREATED, REPORT_MAY_START),
                    ),
                    campaigns_table.c.next_attempt_at <= naive(now),
                )
                .group_by(campaigns_table.c.state)
            ).all()
        return {state: (count, aware(earliest)) for state, count, earliest in rows}
