"""The durable state of every call request, and the outbox of result events.

The broker is only the transport: a request is acked once its row is committed here, every
step of its life is a state change committed here, and every event to publish is a row here
until its publisher confirm arrives. A crash at any instant therefore loses nothing, and a
state change made in one transaction with its event can never be half done.

States of a request:

    received ─claim─▶ sending ─▶ created ─claim─▶ reporting ─▶ reported
       ▲                │  │        ▲                 │
       └── retry ◀──────┘  └▶ failed └─── (retry) ────┘──▶ report_failed
    rejected (a contract violation; only its rejection event is kept)

``sending`` is the dangerous one: the POST may have reached the platform. A ``sending`` row
whose owner is no longer alive is settled as ``failed`` with an unknown outcome, never resent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SCHEMA_VERSION = 2
# An execution option marking a connection that only reads (see ``Store.reading``).
_READ_ONLY = "callbridge_read_only"

PENDING_CREATE = ("received", "retry")
_PENDING_CREATE_SQL = " OR ".join(f"state = '{state}'" for state in PENDING_CREATE)
IN_FLIGHT = ("sending", "reporting")
STATES = (
    "received",
    "retry",
    "sending",
    "created",
    "failed",
    "rejected",
    "reporting",
    "reported",
    "report_failed",
)

metadata = sa.MetaData()

schema_meta = sa.Table(
    "callbridge_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

requests_table = sa.Table(
    "callbridge_requests",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("project_id", sa.BigInteger),
    sa.Column("scenario_id", sa.BigInteger),
    sa.Column("start_block_id", sa.BigInteger),
    sa.Column("correlation_id", sa.String(255)),
    sa.Column("reply_to", sa.String(255)),
    # The exact bytes POSTed to the platform, built once at intake.
    sa.Column("create_body", sa.LargeBinary),
    # JSON [[e164, external_id], ...]: what report rows are mapped back to.
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
    # The creation claim's scan, in due order: without it, finding the most overdue of the
    # received and retry rows sorted all of them, at every claim of a large backlog.
    sa.Index(
        "ix_callbridge_requests_create_due",
        "next_attempt_at",
        postgresql_where=sa.text(_PENDING_CREATE_SQL),
        sqlite_where=sa.text(_PENDING_CREATE_SQL),
    ),
    sa.Index("ix_callbridge_requests_campaign", "campaign_id"),
)

outbox_table = sa.Table(
    "callbridge_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("event_id", sa.String(255), nullable=False, unique=True),
    sa.Column("request_id", sa.String(128)),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("queue", sa.String(255), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # JSON of the AMQP properties and headers to publish with.
    sa.Column("properties", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("published_at", sa.DateTime),
    sa.Index("ix_callbridge_outbox_pending", "published_at", "id"),
)

workers_table = sa.Table(
    "callbridge_workers",
    metadata,
    sa.Column("worker_key", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _naive(moment: dt.datetime | None) -> dt.datetime | None:
    """Store times as naive UTC: SQLite has no time zones, and one convention is simpler."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    return None if moment is None else moment.replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class Event:
    """A message to publish: a result event, or a dead-lettered original."""

    event_id: str
    event_type: str
    queue: str
    body: bytes
    properties: Mapping[str, Any]
    request_id: str | None = None


@dataclasses.dataclass(frozen=True)
class PendingEvent:
    id: int
    event: Event


@dataclasses.dataclass(frozen=True)
class NewRequest:
    """What intake stores for a valid request."""

    request_id: str
    project_id: int
    scenario_id: int
    start_block_id: int
    correlation_id: str | None
    reply_to: str | None
    create_body: bytes
    contacts: Sequence[tuple[str, str | None]]
    phones_rejected: Sequence[Mapping[str, Any]]
    report_columns: Sequence[Mapping[str, Any]] | None
    window_start: dt.datetime
    window_end: dt.datetime
    report_delay_minutes: int


@dataclasses.dataclass(frozen=True)
class RequestRow:
    """A request as the store has it (bulky columns are loaded only by the steps needing them)."""

    request_id: str
    state: str
    project_id: int | None
    scenario_id: int | None
    start_block_id: int | None
    correlation_id: str | None
    reply_to: str | None
    attempts: int
    report_attempts: int
    first_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    campaign_id: int | None
    report_due_at: dt.datetime | None
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    report_delay_minutes: int | None
    outcome: str | None
    received_at: dt.datetime
    updated_at: dt.datetime
    owner: int | None
    phones_accepted: int | None


_ROW_COLUMNS = [requests_table.c[field.name] for field in dataclasses.fields(RequestRow)]
_TIME_FIELDS = {f.name for f in dataclasses.fields(RequestRow) if f.name.endswith("_at")} | {
    "window_start",
    "window_end",
}

# The statements of the hot path are built once, with parameters: building one per call cost
# SQLAlchemy more (constructing it, then its cache key) than the database took to run it. A
# state is matched with ``_state_in``, not ``in_()``: SQLAlchemy expands an IN list anew at
# every execution. The states are written into the SQL, so that either database can see that
# the claim's condition is the partial index's.
_NOW = sa.bindparam("now", type_=sa.DateTime)
_UPDATED_AT = sa.bindparam("updated_at", type_=sa.DateTime)


def _state_in(states: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.or_(*(requests_table.c.state == sa.literal_column(f"'{state}'") for state in states))


def _claim_statement(due: sa.ColumnElement, changes: Mapping[str, Any], columns) -> sa.Update:
    """Take the most overdue row that is ``due`` and no other worker holds (SKIP LOCKED);
    the parameters are ``owner``, ``now`` and ``updated_at``."""
    chosen = (
        sa.select(requests_table.c.request_id)
        .where(due)
        .order_by(requests_table.c.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        requests_table.update()
        .where(requests_table.c.request_id == chosen)
        .values(owner=sa.bindparam("owner"), updated_at=_UPDATED_AT, **changes)
        .returning(*columns)
    )


_CLAIM_CREATE = _claim_statement(
    sa.and_(_state_in(PENDING_CREATE), requests_table.c.next_attempt_at <= _NOW),
    {
        "state": "sending",
        "attempts": requests_table.c.attempts + 1,
        "first_attempt_at": sa.func.coalesce(requests_table.c.first_attempt_at, _NOW),
    },
    [*_ROW_COLUMNS, requests_table.c.create_body, requests_table.c.phones_rejected],
)
_CLAIM_REPORT = _claim_statement(
    sa.and_(requests_table.c.state == "created", requests_table.c.next_attempt_at <= _NOW),
    {"state": "reporting", "report_attempts": requests_table.c.report_attempts + 1},
    [*_ROW_COLUMNS, requests_table.c.contacts, requests_table.c.report_columns],
)
_MARK_PUBLISHED = (
    outbox_table.update()
    .where(outbox_table.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(published_at=sa.bindparam("published_at", type_=sa.DateTime))
)
_DETAILS = sa.select(
    requests_table.c.contacts, requests_table.c.phones_rejected, requests_table.c.report_columns
).where(requests_table.c.request_id == sa.bindparam("request_id"))


@functools.lru_cache(maxsize=64)
def _settle_statement(
    columns: tuple[str, ...], from_states: tuple[str, ...], by_owner: bool, by_outcome: bool
) -> sa.Update:
    """Set ``columns`` (parameters ``new_<column>``) of the request ``settled_id`` while its state
    is one of ``from_states`` (and its owner ``held_by``, its outcome ``had_outcome``)."""
    table = requests_table
    conditions = [table.c.request_id == sa.bindparam("settled_id"), _state_in(from_states)]
    if by_owner:
        conditions.append(table.c.owner == sa.bindparam("held_by"))
    if by_outcome:
        conditions.append(table.c.outcome == sa.bindparam("had_outcome"))
    new = {column: sa.bindparam(f"new_{column}", type_=table.c[column].type) for column in columns}
    return table.update().where(*conditions).values(updated_at=_UPDATED_AT, **new)


class SettleConflict(RuntimeError):
    """The row was no longer ours to settle: another worker settled it as orphaned."""


class Store:
    """SQLAlchemy Core over SQLite (one worker process) or PostgreSQL (any number)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        postgres = self.dialect == "postgresql"
        self._read_options = {"isolation_level": "AUTOCOMMIT"} if postgres else {_READ_ONLY: True}

    # -- set-up --------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create the tables if missing and record the schema version, refusing a newer one."""
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                # Several workers may start at once: serialise the DDL.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7407, 0)"))
            metadata.create_all(conn)
            for index in requests_table.indexes:  # added to tables made by an older callbridge
                index.create(conn, checkfirst=True)
            found = conn.execute(
                sa.select(schema_meta.c.value).where(schema_meta.c.key == "schema_version")
            ).scalar()
            if found is None:
                conn.execute(
                    schema_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
                )
            elif int(found) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {found}, newer than this callbridge "
                    f"({SCHEMA_VERSION}): upgrade callbridge"
                )
            elif int(found) < SCHEMA_VERSION:
                _migrate(conn, int(found))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection that only reads, in no transaction of its own on PostgreSQL (each
        statement reads alone: no BEGIN and ROLLBACK round trips) and without the write lock
        on SQLite (WAL readers need none), so that reads never queue behind writers."""
        with self.engine.connect() as conn:
            yield conn.execution_options(**self._read_options)

    @contextlib.contextmanager
    def _one_statement(self) -> Iterator[Connection]:
        """For a single statement that writes, atomic on its own: in autocommit on PostgreSQL
        (sparing the BEGIN and COMMIT round trips), in a transaction on SQLite (which takes its
        write lock up front)."""
        if self.dialect != "postgresql":
            with self.transaction() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    # -- workers -------------------------------------------------------------------------

    def register_worker(self, *, hostname: str, pid: int) -> int:
        now = _naive(utcnow())
        with self.transaction() as conn:
            return conn.execute(
                workers_table.insert()
                .values(hostname=hostname, pid=pid, started_at=now, heartbeat_at=now)
                .returning(workers_table.c.worker_key)
            ).scalar_one()

    def heartbeat(self, worker_key: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                workers_table.update()
                .where(workers_table.c.worker_key == worker_key)
                .values(heartbeat_at=_naive(utcnow()))
            )

    def unregister_worker(self, worker_key: int) -> None:
        with self.transaction() as conn:
            conn.execute(workers_table.delete().where(workers_table.c.worker_key == worker_key))

    def workers(self) -> list[dict[str, Any]]:
        """Registered worker processes with their last heartbeat, for ``callbridge health``.

        A worker that stopped cleanly is gone; a killed one stays until a live one settles it.
        """
        with self.reading() as conn:
            rows = conn.execute(sa.select(workers_table).order_by(workers_table.c.worker_key))
            return [
                {
                    **row._asdict(),
                    "started_at": _aware(row.started_at),
                    "heartbeat_at": _aware(row.heartbeat_at),
                }
                for row in rows
            ]

    def other_owners(self, exclude: int) -> list[int]:
        """Every other worker that is registered or holds in-flight rows: those to check on."""
        in_flight = sa.select(requests_table.c.owner).where(
            requests_table.c.state.in_(IN_FLIGHT), requests_table.c.owner != exclude
        )
        registered = sa.select(workers_table.c.worker_key).where(
            workers_table.c.worker_key != exclude
        )
        with self.reading() as conn:
            return sorted(conn.execute(sa.union(in_flight, registered)).scalars())

    def forget_worker(self, conn: Connection, worker_key: int) -> None:
        conn.execute(workers_table.delete().where(workers_table.c.worker_key == worker_key))

    # -- intake --------------------------------------------------------------------------

    def add_request(self, conn: Connection, new: NewRequest) -> bool:
        """Insert a valid request; False when its request_id is already known (a duplicate)."""
        now = _naive(utcnow())
        # Field by field, not dataclasses.asdict: that deep-copies every contact of the request.
        values = {field.name: getattr(new, field.name) for field in dataclasses.fields(new)}
        values.update(
            state="received",
            phones_accepted=len(new.contacts),
            contacts=json.dumps(new.contacts, ensure_ascii=False, separators=(",", ":")),
            phones_rejected=json.dumps(new.phones_rejected, ensure_ascii=False),
            report_columns=None
            if new.report_columns is None
            else json.dumps(new.report_columns, ensure_ascii=False),
            window_start=_naive(new.window_start),
            window_end=_naive(new.window_end),
            next_attempt_at=now,
            received_at=now,
            updated_at=now,
        )
        return self._insert_ignoring_duplicate(conn, requests_table, values, "request_id")

    def add_rejected_request(
        self, conn: Connection, *, request_id: str, correlation_id: str | None, reply_to: str | None
    ) -> bool:
        """Record a rejection so a later delivery under the same request_id changes nothing."""
        now = _naive(utcnow())
        values = {
            "request_id": request_id,
            "state": "rejected",
            "outcome": "rejected",
            "correlation_id": correlation_id,
            "reply_to": reply_to,
            "received_at": now,
            "updated_at": now,
        }
        return self._insert_ignoring_duplicate(conn, requests_table, values, "request_id")

    def add_event(self, conn: Connection, event: Event) -> bool:
        """Queue an event for the relay; False when that event_id is queued already."""
        values = {
            "event_id": event.event_id,
            "request_id": event.request_id,
            "event_type": event.event_type,
            "queue": event.queue,
            "body": event.body,
            "properties": json.dumps(event.properties, ensure_ascii=False),
            "created_at": _naive(utcnow()),
        }
        return self._insert_ignoring_duplicate(conn, outbox_table, values, "event_id")

    def _insert_ignoring_duplicate(
        self, conn: Connection, table: sa.Table, values: Mapping[str, Any], key: str
    ) -> bool:
        statement = _insert_ignoring(table.name, key, tuple(values))
        # RETURNING, not rowcount: psycopg does not report a rowcount for this statement.
        return conn.execute(statement, dict(values)).first() is not None

    # -- claims --------------------------------------------------------------------------

    def _claim(self, statement: sa.Update, owner: int, now: dt.datetime):
        """Atomically take one due request: FOR UPDATE SKIP LOCKED lets workers share the queue."""
        with self._one_statement() as conn:
            return conn.execute(
                statement, {"owner": owner, "now": _naive(now), "updated_at": _naive(utcnow())}
            ).first()

    def claim_create(
        self, owner: int, now: dt.datetime
    ) -> tuple[RequestRow, bytes, list[dict]] | None:
        """Mark one due request ``sending`` (committed before the POST); return it with its
        body and its rejected phones, all that ``campaign.created`` needs beyond the answer."""
        row = self._claim(_CLAIM_CREATE, owner, now)
        if row is None:
            return None
        *fields, body, phones_rejected = row
        return _row(fields), body, json.loads(phones_rejected or "[]")

    def claim_report(
        self, owner: int, now: dt.datetime
    ) -> tuple[RequestRow, list[tuple[str, str | None]], list[dict] | None] | None:
        """Mark one campaign whose report is due ``reporting``; return it with its contacts."""
        row = self._claim(_CLAIM_REPORT, owner, now)
        if row is None:
            return None
        *fields, contacts, columns = row
        return (
            _row(fields),
            [tuple(pair) for pair in json.loads(contacts or "[]")],
            None if columns is None else json.loads(columns),
        )

    # -- settling ------------------------------------------------------------------------

    def settle(
        self,
        conn: Connection,
        request_id: str,
        *,
        from_states: Sequence[str],
        owner: int | None,
        changes: Mapping[str, Any],
        outcome: str | None = None,
    ) -> None:
        """Move a request on from a state we hold; SettleConflict when it is no longer ours.

        ``outcome``, when given, must match too: ``callbridge resolve`` may move a ``failed``
        request only while its outcome is ``unknown``.
        """
        statement = _settle_statement(
            tuple(changes), tuple(from_states), owner is not None, outcome is not None
        )
        parameters = {
            f"new_{key}": _naive(value) if isinstance(value, dt.datetime) else value
            for key, value in changes.items()
        }
        parameters.update(
            settled_id=request_id,
            held_by=owner,
            had_outcome=outcome,
            updated_at=_naive(utcnow()),
        )
        if conn.execute(statement, parameters).rowcount != 1:
            raise SettleConflict(request_id)

    def in_flight_of(self, conn: Connection, owner: int) -> list[RequestRow]:
        return [
            _row(row)
            for row in conn.execute(
                sa.select(*_ROW_COLUMNS)
                .where(requests_table.c.owner == owner, requests_table.c.state.in_(IN_FLIGHT))
                .with_for_update()
            )
        ]

    # -- reading -------------------------------------------------------------------------

    def get_request(self, request_id: str) -> RequestRow | None:
        return self._first_request(requests_table.c.request_id == request_id)

    def find_by_campaign(self, campaign_id: int) -> RequestRow | None:
        return self._first_request(requests_table.c.campaign_id == campaign_id)

    def _first_request(self, where: sa.ColumnElement[bool]) -> RequestRow | None:
        with self.reading() as conn:
            row = conn.execute(sa.select(*_ROW_COLUMNS).where(where)).first()
        return None if row is None else _row(row)

    def request_details(self, request_id: str) -> dict[str, Any]:
        """The bulky columns of a request, decoded: contacts, rejected phones, report columns."""
        with self.reading() as conn:
            row = conn.execute(_DETAILS, {"request_id": request_id}).one()
        return {
            "contacts": [tuple(pair) for pair in json.loads(row.contacts or "[]")],
            "phones_rejected": json.loads(row.phones_rejected or "[]"),
            "report_columns": None
            if row.report_columns is None
            else json.loads(row.report_columns),
        }

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
                    "created_at": _aware(row.created_at),
                    "published_at": _aware(row.published_at),
                }
                for row in rows
            ]

    def stats(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Figures for metrics and health: backlog, oldest unsent event, states, reports due."""
        now = now or utcnow()
        with self.reading() as conn:
            backlog, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(outbox_table.c.created_at)).where(
                    outbox_table.c.published_at.is_(None)
                )
            ).one()
            by_state = dict(
                conn.execute(
                    sa.select(requests_table.c.state, sa.func.count()).group_by(
                        requests_table.c.state
                    )
                ).all()
            )
            reports_due = conn.execute(
                sa.select(sa.func.count()).where(
                    requests_table.c.state == "created",
                    requests_table.c.report_due_at <= _naive(now),
                )
            ).scalar_one()
        return {
            "outbox_backlog": backlog,
            "outbox_oldest_age_seconds": None
            if oldest is None
            else max(0.0, (now - _aware(oldest)).total_seconds()),
            "requests_by_state": by_state,
            "reports_due": reports_due,
        }

    def overdue(self, now: dt.datetime) -> dict[str, tuple[int, dt.datetime]]:
        """Requests a step may claim now, by state: how many, and the earliest due time.

        For ``callbridge health``: a due request that no worker claims for long means no step
        thread is taking work (all busy, stuck, paused on a refused token, or no worker).
        """
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(
                    requests_table.c.state,
                    sa.func.count(),
                    sa.func.min(requests_table.c.next_attempt_at),
                )
                .where(
                    requests_table.c.state.in_((*PENDING_CREATE, "created")),
                    requests_table.c.next_attempt_at <= _naive(now),
                )
                .group_by(requests_table.c.state)
            ).all()
        return {state: (count, _aware(earliest)) for state, count, earliest in rows}

    # -- the outbox ----------------------------------------------------------------------

    @contextlib.contextmanager
    def pending_events(self, limit: int) -> Iterator[tuple[list[PendingEvent], list[int]]]:
        """A batch of unpublished events, and a list to put the ids of those published.

        On PostgreSQL the rows stay locked (SKIP LOCKED) while the block publishes them, so two
        relays never publish the same batch at once. SQLite serves one process with one relay:
        there the batch is read and marked in two short transactions, so that publishing does
        not hold SQLite's single write lock.
        """
        hold_lock = self.dialect == "postgresql"
        with self.transaction() if hold_lock else self.reading() as conn:
            rows = conn.execute(_pending_statement(limit)).all()
            batch = [
                PendingEvent(
                    row.id,
                    Event(
                        event_id=row.event_id,
                        event_type=row.event_type,
                        queue=row.queue,
                        body=row.body,
                        properties=json.loads(row.properties),
                        request_id=row.request_id,
                    ),
                )
                for row in rows
            ]
            published: list[int] = []
            if hold_lock:
                yield batch, published
                self._mark_published(conn, published)
        if not hold_lock:
            yield batch, published
            with self.transaction() as conn:
                self._mark_published(conn, published)

    @staticmethod
    def _mark_published(conn: Connection, ids: Sequence[int]) -> None:
        if ids:
            conn.execute(_MARK_PUBLISHED, {"ids": list(ids), "published_at": _naive(utcnow())})


@functools.lru_cache(maxsize=16)
def _insert_ignoring(table_name: str, key: str, columns: tuple[str, ...]) -> sa.TextClause:
    """``INSERT … ON CONFLICT (key) DO NOTHING RETURNING key``, one SQL for SQLite and PostgreSQL.

    Built once per column set as text with typed parameters: SQLAlchemy never caches the
    compiled form of its dialect inserts (they opt out of its statement cache), and compiling
    one cost more than the rest of the transaction.
    """
    table = metadata.tables[table_name]
    return sa.text(
        f"INSERT INTO {table_name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + column for column in columns)}) "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
    ).bindparams(*(sa.bindparam(column, type_=table.c[column].type) for column in columns))


@functools.lru_cache(maxsize=4)
def _pending_statement(limit: int) -> sa.Select:
    """The oldest ``limit`` unpublished events that no other relay holds (see _claim_statement)."""
    return (
        sa.select(outbox_table)
        .where(outbox_table.c.published_at.is_(None))
        .order_by(outbox_table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _row(fields: Iterable[Any]) -> RequestRow:
    values = dict(zip((f.name for f in dataclasses.fields(RequestRow)), fields, strict=True))
    for name in _TIME_FIELDS:
        values[name] = _aware(values[name])
    return RequestRow(**values)


def _migrate(conn: Connection, version: int) -> None:
    """Bring a store made by an older callbridge to ``SCHEMA_VERSION``, one step at a time."""
    if version < 2:
        # 2: the count of accepted phones is kept, so creating a campaign needs no second read.
        conn.execute(sa.text("ALTER TABLE callbridge_requests ADD COLUMN phones_accepted INTEGER"))
        rows = conn.execute(
            sa.select(requests_table.c.request_id, requests_table.c.contacts).where(
                requests_table.c.contacts.is_not(None)
            )
        ).all()
        for request_id, contacts in rows:
            conn.execute(
                requests_table.update()
                .where(requests_table.c.request_id == request_id)
                .values(phones_accepted=len(json.loads(contacts)))
            )
    conn.execute(
        schema_meta.update()
        .where(schema_meta.c.key == "schema_version")
        .values(value=str(SCHEMA_VERSION))
    )


def open_store(database_url: str, *, pool_size: int = 5) -> Store:
    """An engine tuned per backend: SQLite in WAL with immediate write locks, PostgreSQL pooled."""
    if database_url.startswith("sqlite"):
        engine = _sqlite_engine(database_url)
    else:
        engine = sa.create_engine(
            database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    return Store(engine)


def _sqlite_engine(database_url: str) -> Engine:
    path = sa.engine.make_url(database_url).database
    if path and path != ":memory:":
        import pathlib

        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(database_url, connect_args={"timeout": 60, "isolation_level": None})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
        dbapi_connection.execute("PRAGMA busy_timeout=60000")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Take the write lock up front: a deferred transaction that later writes can fail
        # with "database is locked" without waiting, immediate ones queue politely. Reads
        # (Store.reading) need no lock in WAL mode, and must not queue behind the writers.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
