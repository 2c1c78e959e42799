"""A store as callbridge made it at schema version 2 (one campaign per request, in its row; no
outbox refusals, no workers' view of the platform), frozen here so that migrating it through
every later step can be tested on both databases."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from adapters.store.tables import schema_meta
from schemas.phones import normalise_phone

_V2 = sa.MetaData()
V2_REQUESTS = sa.Table(
    "callbridge_requests",
    _V2,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("project_id", sa.BigInteger),
    sa.Column("scenario_id", sa.BigInteger),
    sa.Column("start_block_id", sa.BigInteger),
    sa.Column("correlation_id", sa.String(255)),
    sa.Column("reply_to", sa.String(255)),
    sa.Column("create_body", sa.LargeBinary),
    sa.Column("contacts", sa.Text),
    sa.Column("phones_rejected", sa.Text),
    sa.Column("phones_accepted", sa.Integer),
    sa.Column("report_columns", sa.Text),
    sa.Column("window_start", sa.DateTime),
    sa.Column("window_end", sa.DateTime),
    sa.Column("report_delay_minutes", sa.Integer),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("report_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_attempt_at", sa.DateTime),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("owner", sa.BigInteger),
    sa.Column("campaign_id", sa.BigInteger),
    sa.Column("report_due_at", sa.DateTime),
    sa.Column("outcome", sa.String(32)),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_callbridge_requests_due", "state", "next_attempt_at"),
    sa.Index(
        "ix_callbridge_requests_create_due",
        "next_attempt_at",
        postgresql_where=sa.text("state = 'received' OR state = 'retry'"),
        sqlite_where=sa.text("state = 'received' OR state = 'retry'"),
    ),
    sa.Index("ix_callbridge_requests_campaign", "campaign_id"),
)
V2_OUTBOX = sa.Table(
    "callbridge_outbox",
    _V2,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),
    sa.Column("request_id", sa.String(128)),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("properties", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("published_at", sa.DateTime),
    sa.Index("ix_callbridge_outbox_pending", "published_at", "id"),
)
V2_WORKERS = sa.Table(
    "callbridge_workers",
    _V2,
    sa.Column("worker_key", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
)


def make_v2_store(database_url: str, rows: list[dict[str, Any]], *, version: int = 2) -> None:
    """A fresh store of schema ``version`` (1 lacks ``phones_accepted``) holding ``rows``."""
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        _V2.create_all(conn)
        schema_meta.create(conn)
        conn.execute(schema_meta.insert().values(key="schema_version", value=str(version)))
        if rows:
            conn.execute(V2_REQUESTS.insert(), rows)
        if version == 1:
            conn.execute(sa.text("ALTER TABLE callbridge_requests DROP COLUMN phones_accepted"))
    engine.dispose()


def v2_row(request_id: str, state: str, body: dict, **changes: Any) -> dict[str, Any]:
    """A version 2 request row for ``body`` (a valid call request) in ``state``."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    schedule = body["campaign"]["schedule"]
    zone = ZoneInfo(schedule["timezone"])
    day = dt.date.fromisoformat(schedule["date"])

    def utc(clock: str) -> dt.datetime:
        moment = dt.datetime.combine(day, dt.time.fromisoformat(clock), tzinfo=zone)
        return moment.astimezone(dt.UTC).replace(tzinfo=None)

    phones = [
        (normalise_phone(entry["phone"]), entry.get("external_id")) for entry in body["phones"]
    ]
    platform_body = {
        "campaign": {
            "project_id": body["campaign"]["project_id"],
            "name": body["campaign"]["name"],
            "start_block_id": body["campaign"]["start_block_id"],
            "phone_id": body["campaign"]["phone_id"],
            "state": "Создано",
            "schedule": {
                "date": schedule["date"],
                "start_time": schedule["start_time"],
                "end_time": schedule["end_time"],
                "periods": {"id": 1, "title": "Однократно"},
                "attempts": {"id": 1, "title": "1"},
                "interval": "5",
            },
        },
        "phones": [{"phone": phone, "add_data": {}} for phone, _ in phones],
    }
    row = {
        "request_id": request_id,
        "state": state,
        "project_id": body["campaign"]["project_id"],
        "scenario_id": body["campaign"]["scenario_id"],
        "start_block_id": body["campaign"]["start_block_id"],
        "correlation_id": None,
        "reply_to": None,
        "create_body": json.dumps(platform_body, ensure_ascii=False).encode(),
        "contacts": json.dumps(phones),
        "phones_rejected": "[]",
        "phones_accepted": len(phones),
        "report_columns": None,
        "window_start": utc(schedule["start_time"]),
        "window_end": utc(schedule["end_time"]),
        "report_delay_minutes": 0,
        "attempts": 0,
        "report_attempts": 0,
        "first_attempt_at": None,
        "next_attempt_at": now,
        "owner": None,
        "campaign_id": None,
        "report_due_at": None,
        "outcome": None,
        "received_at": now,
        "updated_at": now,
    }
    row.update(changes)
    return row
