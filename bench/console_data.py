"""A large store for ``bench.console``, made with PostgreSQL's ``generate_series``, and the pages
the bench asks for on it.

``fill`` writes ``requests`` requests received over the last 30 days (newest last), each with
a campaign of three contacts (one in ten with two) and an attempt, in states as a busy
deployment has them (most reported; one in a hundred failed, one in ten of those unknown; some
rejected, some whose report failed), and ``events`` outbox events spread over them, all
published but the last 100; and 10,000 audit entries. The secondary indexes are dropped while
the rows go in and made again afterwards by ``create_schema`` (as a callbridge upgrading a store
makes new ones), then the tables are analysed.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator

import psycopg

from adapters.store import Store, open_store

DAYS = 30
CONTACTS = 3
UNPUBLISHED = 100
AUDIT_ENTRIES = 10_000
_PROGRESS = sys.stderr


class FillError(RuntimeError):
    """The bench's store could not be made, or a page did not answer."""


def fill(url: str, *, requests: int, events: int) -> None:
    store = open_store(url, pool_size=1)
    try:
        store.create_schema()
    finally:
        store.engine.dispose()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        dropped = _drop_secondary_indexes(conn)
        for what, statement, params in _statements(requests, events):
            started = time.monotonic()
            conn.execute(statement, params)
            print(f"  {what}: {time.monotonic() - started:.0f} s", file=_PROGRESS, flush=True)
    store = open_store(url, pool_size=1)
    try:
        started = time.monotonic()
        store.create_schema()  # makes the dropped indexes again
        print(f"  {dropped} indexes: {time.monotonic() - started:.0f} s", file=_PROGRESS)
    finally:
        store.engine.dispose()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _drop_secondary_indexes(conn: psycopg.Connection) -> int:
    """Drop every index that backs no constraint; how many."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint)"
        )
    ]
    for name in names:
        conn.execute(f'DROP INDEX "{name}"')
    return len(names)


def _statements(requests: int, events: int) -> Iterator[tuple[str, str, dict]]:
    params = {"n": requests, "e": events, "days": DAYS, "contacts": CONTACTS}
    yield "requests", _REQUESTS, params
    yield "campaigns", _CAMPAIGNS, params
    yield "contact ids", _EXTERNAL_IDS, params
    yield "attempts", _ATTEMPTS, params
    yield "events", _EVENTS, {**params, "unpublished": UNPUBLISHED}
    yield "audit", _AUDIT, {"audit": AUDIT_ENTRIES, "n": requests}


# Request i (1..n) is received i/n of the way through the last 30 days.
_RECEIVED = (
    "now() AT TIME ZONE 'UTC' - (%(n)s - i) * interval '1 second' * (%(days)s * 86400.0 / %(n)s)"
)
_REQUEST_STATE = """CASE WHEN i %% 100 = 0 THEN 'failed' WHEN i %% 100 = 1 THEN 'rejected'
    ELSE 'created' END"""
_OUTCOME = """CASE WHEN i %% 100 = 0
        THEN (CASE WHEN i %% 1000 = 0 THEN 'unknown' ELSE 'not_created' END)
    WHEN i %% 100 = 1 THEN 'rejected' ELSE 'created' END"""
# One request in ten is two campaigns (its contacts in two time zones).
_CAMPAIGN_COUNT = "CASE WHEN i %% 10 = 5 THEN 2 ELSE 1 END"
_REQUESTS = f"""
INSERT INTO callbridge_requests (request_id, state, outcome, project_id, scenario_id,
    start_block_id, purpose, timezone, campaign_count, phones_rejected, report_delay_minutes,
    received_at, updated_at)
SELECT 'bench-' || lpad(i::text, 7, '0'), {_REQUEST_STATE}, {_OUTCOME}, 1 + i %% 50, 951, 10,
    (ARRAY['visit', 'debt', 'survey', 'scenario:951'])[1 + i %% 4], 'Asia/Yekaterinburg',
    CASE WHEN i %% 100 = 1 THEN NULL ELSE {_CAMPAIGN_COUNT} END, '[]', 15, r,
    r + interval '1 minute'
FROM (SELECT i, {_RECEIVED} AS r FROM generate_series(1, %(n)s) i) s
"""
# Campaign g of request i: most reported, some created (report to come), one in a hundred of
# the requests failed (with its request), some whose report failed.
_CAMPAIGN_STATE = """CASE WHEN i %% 100 = 0 THEN 'failed' WHEN i %% 100 = 2 THEN 'report_failed'
    WHEN i %% 100 < 10 THEN 'created' ELSE 'reported' END"""
# A created campaign's report is due later (as a live deployment's are: the worker fetches
# each when it falls due); the others' was due 15 minutes after their calls.
_REPORT_DUE = """CASE WHEN i %% 100 BETWEEN 3 AND 9
    THEN now() AT TIME ZONE 'UTC' + (1 + i %% 24) * interval '1 hour'
    ELSE r + interval '9 hours 15 minutes' END"""
_CAMPAIGNS = f"""
INSERT INTO callbridge_campaigns (request_id, group_no, state, outcome, create_body, contacts,
    phones_accepted, window_start, window_end, platform_date, platform_start, platform_end,
    attempts, report_attempts, first_attempt_at, next_attempt_at, campaign_id, report_due_at,
    last_status, last_error, updated_at, project_id, scenario_id, start_block_id,
    report_delay_minutes, campaign_count)
SELECT 'bench-' || lpad(i::text, 7, '0'), g, {_CAMPAIGN_STATE}, {_OUTCOME}, '\\x7b7d',
    '[' || (SELECT string_agg('["+7912'
            || lpad(((i * %(contacts)s + k) %% 10000000)::text, 7, '0')
            || '", "bench-' || i || '-lead-' || k || '"]', ', ')
        FROM generate_series(0, %(contacts)s - 1) k) || ']',
    %(contacts)s, r + interval '1 hour', r + interval '9 hours', to_char(r, 'YYYY-MM-DD'),
    '09:00', '17:00', 1, CASE WHEN i %% 100 >= 10 OR i %% 100 = 2 THEN 1 ELSE 0 END,
    r + interval '1 second', {_REPORT_DUE},
    CASE WHEN i %% 100 <> 0 THEN 1000000 + i * 2 + g END, {_REPORT_DUE},
    CASE WHEN i %% 100 = 0 THEN 500 END,
    CASE WHEN i %% 100 = 0 THEN 'Internal Server Error' END, r + interval '1 minute',
    1 + i %% 50, 951, 10, 15, {_CAMPAIGN_COUNT}
FROM (SELECT i, {_RECEIVED} AS r FROM generate_series(1, %(n)s) i) s,
    generate_series(1, 2) g
WHERE i %% 100 <> 1 AND g <= {_CAMPAIGN_COUNT}
"""
_EXTERNAL_IDS = """
INSERT INTO callbridge_external_ids (external_id, request_id)
SELECT 'bench-' || i || '-lead-' || k, 'bench-' || lpad(i::text, 7, '0')
FROM generate_series(1, %(n)s) i, generate_series(0, %(contacts)s - 1) k
"""
_ATTEMPTS = f"""
INSERT INTO callbridge_attempts (request_id, group_no, kind, attempt, started_at, finished_at,
    outcome, status, message, campaign_id)
SELECT 'bench-' || lpad(i::text, 7, '0'), 1, 'create', 1, r, r + interval '180 milliseconds',
    CASE WHEN i %% 100 = 0 THEN 'failed' ELSE 'created' END,
    CASE WHEN i %% 100 = 0 THEN 500 ELSE 200 END,
    CASE WHEN i %% 100 = 0 THEN 'Internal Server Error' END,
    CASE WHEN i %% 100 <> 0 THEN 1000000 + i * 2 + 1 END
FROM (SELECT i, {_RECEIVED} AS r FROM generate_series(1, %(n)s) i) s
WHERE i %% 100 <> 1
"""
# Event j belongs to request 1 + (j - 1) % n, as its ((j - 1) / n)-th event.
_EVENTS = """
INSERT INTO callbridge_outbox (event_id, request_id, event_type, queue, body, properties,
    created_at, published_at)
SELECT rid || ':' || etype || ':' || k, rid, etype, 'crm.call_results',
    convert_to('{"type": "' || etype || '", "request_id": "' || rid || '", "part": ' || k
        || ', "rows": [], "missing": []}', 'UTF8'),
    '{"type": "' || etype || '"}', r + k * interval '1 minute',
    CASE WHEN j > %(e)s - %(unpublished)s THEN NULL
        ELSE r + k * interval '1 minute' + interval '1 second' END
FROM (
    SELECT j, 'bench-' || lpad((1 + (j - 1) %% %(n)s)::text, 7, '0') AS rid, (j - 1) / %(n)s AS k,
        CASE WHEN (j - 1) / %(n)s = 0 THEN 'campaign.created' ELSE 'campaign.report' END AS etype,
        now() AT TIME ZONE 'UTC' - (%(n)s - (1 + (j - 1) %% %(n)s)) * interval '1 second'
            * (%(days)s * 86400.0 / %(n)s) AS r
    FROM generate_series(1, %(e)s) j
) s
"""
_AUDIT = """
INSERT INTO callbridge_audit (at, actor, role, address, action, request_id, subject, outcome,
    detail)
SELECT now() AT TIME ZONE 'UTC' - (%(audit)s - a) * interval '1 minute', 'olga', 'operator',
    '10.0.0.7', 'resolve.resend', 'bench-' || lpad((1 + a * 97 %% %(n)s)::text, 7, '0'), NULL,
    'done', 'request back to received'
FROM generate_series(1, %(audit)s) a
"""


def pages(store: Store) -> list[tuple[str, str]]:
    """Every page of the console, with what each needs found in the store: a request in the
    middle, one of its contacts, its campaign, and a key half-way down the list."""
    with store.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM callbridge_requests").scalar_one()
        middle = f"bench-{count // 2:07d}"
        received = conn.exec_driver_sql(
            "SELECT received_at FROM callbridge_requests WHERE request_id = %(id)s",
            {"id": middle},
        ).scalar_one()
    cursor = base64.urlsafe_b64encode(json.dumps([received.isoformat(), middle]).encode()).decode()
    day = received.date().isoformat()
    return [
        ("overview", "/"),
        ("requests, newest", "/requests/"),
        ("requests, half-way down", f"/requests/?after={cursor}"),
        ("requests, failed", "/requests/?state=failed"),
        ("requests, failed, half-way", f"/requests/?state=failed&after={cursor}"),
        ("requests, project 7", "/requests/?project=7"),
        ("requests, one day", f"/requests/?from={day}&to={day}"),
        ("requests, project and state", "/requests/?project=7&state=failed"),
        ("requests, purpose", "/requests/?purpose=debt"),
        ("search request_id", f"/requests/?q={middle}"),
        ("search external_id", f"/requests/?q=bench-{count // 2}-lead-1"),
        ("search campaign id", f"/requests/?q={1_000_000 + count // 2 * 2 + 1}"),
        ("a request", f"/request?id={middle}"),
        ("an event", f"/event?id={middle}:campaign.report:3"),
        ("needs attention", "/attention/"),
        ("audit log", "/audit/"),
    ]
