"""The connection to the database, tuned per backend, and the ways the store uses it.

SQLite serves one worker process: WAL, so readers never wait for the writer, and write
transactions that take the lock up front. PostgreSQL serves any number: pooled, and statements
that stand alone run in autocommit, sparing the BEGIN and COMMIT round trips.
"""

from __future__ import annotations

import contextlib
import functools
import pathlib
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from adapters.config import ConfigError
from adapters.store.tables import metadata

# An execution option marking a connection that only reads (see ``Database.reading``).
_READ_ONLY = "callbridge_read_only"


class Database:
    """The engine, and the three kinds of connection the store's parts use."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        postgres = self.dialect == "postgresql"
        self._read_options = {"isolation_level": "AUTOCOMMIT"} if postgres else {_READ_ONLY: True}

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
    def one_statement(self) -> Iterator[Connection]:
        """For a single statement that writes, atomic on its own: in autocommit on PostgreSQL,
        in a transaction on SQLite (which takes its write lock up front)."""
        if self.dialect != "postgresql":
            with self.transaction() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def insert_ignoring_duplicate(
        self, conn: Connection, table: sa.Table, values: Mapping[str, Any], key: str
    ) -> bool:
        """Insert a row unless one with the same ``key`` exists; whether it was inserted."""
        statement = _insert_ignoring(table.name, key, tuple(values))
        # RETURNING, not rowcount: psycopg does not report a rowcount for this statement.
        return conn.execute(statement, dict(values)).first() is not None


@functools.lru_cache(maxsize=16)
def _insert_ignoring(table_name: str, key: str, columns: tuple[str, ...]) -> sa.TextClause:
    """``INSERT … ON CONFLICT (key) DO NOTHING RETURNING key``, one SQL for SQLite and PostgreSQL.

    Built once per column set as text with typed parameters: SQLAlchemy does not cache the
    compiled form of its dialect inserts, and compiling one costs more than the rest of the
    transaction.
    """
    table = metadata.tables[table_name]
    return sa.text(
        f"INSERT INTO {table_name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + column for column in columns)}) "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
    ).bindparams(*(sa.bindparam(column, type_=table.c[column].type) for column in columns))


class StoreMissing(ConfigError):
    """An operator's command found no SQLite file where DATABASE_URL points: it would have
    made an empty store and answered from it."""


def create_engine(database_url: str, *, pool_size: int, must_exist: bool = False) -> Engine:
    """An engine on the store; ``must_exist``: refuse a SQLite file that is not there."""
    if database_url.startswith("sqlite"):
        path = sa.engine.make_url(database_url).database
        if must_exist and path and path != ":memory:" and not pathlib.Path(path).is_file():
            raise StoreMissing(
                f"DATABASE_URL: no store at {path} (no worker has run on it); run the command "
                "with the worker's DATABASE_URL, or from the folder the worker runs in"
            )
        return _sqlite_engine(database_url)
    return sa.create_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def _sqlite_engine(database_url: str) -> Engine:
    path = sa.engine.make_url(database_url).database
    if path and path != ":memory:":
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
        # (Database.reading) need no lock in WAL mode, and must not queue behind the writers.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
