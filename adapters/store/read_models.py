"""Read models over the store: what health, metrics and the operator's commands show."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from adapters.store.campaigns import REPORT_MAY_START
from adapters.store.engine import Database
from adapters.store.records import aware, naive, utcnow
from adapters.store.states import IN_FLIGHT, PENDING_CREATE, State
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
                    name: aware(value) if isinstance(value, dt.datetime) else value
                    for name, value in row._asdict().items()
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
                    outbox_table.c.refusals,
                    outbox_table.c.retry_at,
                    outbox_table.c.set_aside_at,
                    outbox_table.c.set_aside_reason,
                )
                .where(outbox_table.c.request_id == request_id)
                .order_by(outbox_table.c.id)
            )
            return [
                {
                    **row._asdict(),
                    "created_at": aware(row.created_at),
                    "published_at": aware(row.published_at),
                    "retry_at": aware(row.retry_at),
                    "set_aside_at": aware(row.set_aside_at),
                }
                for row in rows
            ]

    def outbox_of(
        self, request_id: str, *, after: int = 0, limit: int = 100, event_type: str | None = None
    ) -> list[dict]:
        """A request's outbox rows with their bodies (of one type, when given), in the order
        queued, from id ``after`` on, at most ``limit``: what ``callbridge events`` prints."""
        where = [outbox_table.c.request_id == request_id, outbox_table.c.id > after]
        if event_type is not None:
            where.append(outbox_table.c.event_type == event_type)
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(
                    outbox_table.c.id,
                    outbox_table.c.event_id,
                    outbox_table.c.event_type,
                    outbox_table.c.queue,
                    outbox_table.c.body,
                    outbox_table.c.created_at,
                    outbox_table.c.published_at,
                )
                .where(*where)
                .order_by(outbox_table.c.id)
                .limit(limit)
            )
            return [
                {
                    **row._asdict(),
                    "created_at": aware(row.created_at),
                    "published_at": aware(row.published_at),
                }
                for row in rows
            ]

    def published_at(self, ids: list[int]) -> dict[int, dt.datetime]:
        """When each of these outbox rows was published, for those that were."""
        if not ids:
            return {}
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(outbox_table.c.id, outbox_table.c.published_at).where(
                    outbox_table.c.id.in_(ids), outbox_table.c.published_at.is_not(None)
                )
            )
            return {row.id: aware(row.published_at) for row in rows}

    def unknown_outcomes(self) -> tuple[int, dt.datetime | None]:
        """Failed campaigns whose outcome is unknown, waiting for ``callbridge resolve``: how
        many, and when the oldest of them failed."""
        campaigns = campaigns_table.c
        with self.reading() as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(campaigns.updated_at)).where(
                    campaigns.state == State.FAILED, campaigns.outcome == "unknown"
                )
            ).one()
        return count, aware(oldest)

    def stats(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Figures for metrics and health: the outbox (waiting, refused, set aside, the oldest
        waiting, the last publish), requests and campaigns by state, reports due."""
        now = now or utcnow()
        outbox = outbox_table.c
        with self.reading() as conn:
            unpublished = {
                aside: (count, oldest, refused)
                for aside, count, oldest, refused in conn.execute(
                    sa.select(
                        outbox.set_aside_at.is_not(None),
                        sa.func.count(),
                        sa.func.min(outbox.created_at),
                        sa.func.sum(sa.case((outbox.refusals > 0, 1), else_=0)),
                    )
                    .where(outbox.published_at.is_(None))
                    .group_by(outbox.set_aside_at.is_not(None))
                )
            }
            last_published = conn.execute(sa.select(sa.func.max(outbox.published_at))).scalar()
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
        backlog, oldest, refused = unpublished.get(False, (0, None, 0))
        return {
            "outbox_backlog": backlog,
            "outbox_oldest_age_seconds": _age(now, oldest),
            "outbox_refused": refused or 0,
            "outbox_set_aside": unpublished.get(True, (0,))[0],
            "outbox_last_published_age_seconds": _age(now, last_published),
            "requests_by_state": by_state[requests_table.name],
            "campaigns_by_state": by_state[campaigns_table.name],
            "reports_due": reports_due,
        }

    def held_since(self, before: dt.datetime, *, limit: int = 20) -> list[dict[str, Any]]:
        """In-flight campaigns (``sending``, ``reporting``) unchanged since before ``before``,
        the longest held first: for ``callbridge health``, which knows whose owners live."""
        campaigns = campaigns_table.c
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(
                    campaigns.request_id,
                    campaigns.group_no,
                    campaigns.campaign_count,
                    campaigns.state,
                    campaigns.owner,
                    campaigns.updated_at,
                )
                .where(campaigns.state.in_(IN_FLIGHT), campaigns.updated_at < naive(before))
                .order_by(campaigns.updated_at)
                .limit(limit)
            )
            return [{**row._asdict(), "updated_at": aware(row.updated_at)} for row in rows]

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


def _age(now: dt.datetime, moment: dt.datetime | None) -> float | None:
    """Seconds since a stored (naive UTC) moment; None when there is none."""
    return None if moment is None else max(0.0, (now - aware(moment)).total_seconds())
