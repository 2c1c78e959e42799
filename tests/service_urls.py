"""Where the tests and the bench find RabbitMQ and PostgreSQL: one place for both URLs.

``CALLBRIDGE_TEST_RABBITMQ_URL`` and ``CALLBRIDGE_TEST_POSTGRES_URL`` replace the defaults, the
services on this machine as ``scripts/ensure-services`` sets them up. The PostgreSQL URL names
a login allowed to create databases, and a database to connect to while doing so: each test
and each bench scenario creates a database of its own beside it, and drops it afterwards.

Run as a module (standard library only, so before anything is installed):
``python3 -m tests.service_urls shell`` prints the URLs' parts as shell assignments for
``scripts/ensure-services``; ``python -m tests.service_urls check`` (with the test extra
installed) logs in to both services over TCP as the tests do, creates and drops a database, and
says in one line what does not work.
"""

from __future__ import annotations

import os
import shlex
import sys
import uuid
from urllib.parse import unquote, urlsplit, urlunsplit

RABBITMQ_URL = os.environ.get("CALLBRIDGE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_URL = os.environ.get(
    "CALLBRIDGE_TEST_POSTGRES_URL",
    "postgresql://callbridge:callbridge@127.0.0.1:5432/callbridge",
)


def database_url(name: str) -> str:
    """The URL of database ``name`` beside ``POSTGRES_URL``'s (same server and login), in the
    form ``DATABASE_URL`` takes (SQLAlchemy's, with the psycopg 3 driver)."""
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(("postgresql+psycopg", parts.netloc, f"/{name}", parts.query, ""))


def _where(url: str) -> str:
    """``user@host:port/path`` of a URL: what a message may show of it (not the password)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.username}@{parts.hostname}{port}{parts.path}"


def shell() -> str:
    """The URLs' parts as shell assignments (``pg_user=...``), quoted for ``eval``."""
    amqp, pg = urlsplit(RABBITMQ_URL), urlsplit(POSTGRES_URL)
    values = {
        "amqp_host": amqp.hostname or "127.0.0.1",
        "amqp_port": amqp.port or 5672,
        "amqp_where": _where(RABBITMQ_URL),
        "pg_host": pg.hostname or "127.0.0.1",
        "pg_port": pg.port or 5432,
        "pg_user": unquote(pg.username or ""),
        "pg_password": unquote(pg.password or ""),
        "pg_database": unquote(pg.path.lstrip("/")),
        "pg_where": _where(POSTGRES_URL),
    }
    return "\n".join(f"{name}={shlex.quote(str(value))}" for name, value in values.items())


def rabbitmq_problem() -> str | None:
    """Why the tests could not use RabbitMQ at ``RABBITMQ_URL``, or None."""
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # any failure means the same: the tests cannot use it
        return f"cannot log in to RabbitMQ as {_where(RABBITMQ_URL)}: {_first_line(exc)}"
    return None


def postgres_problem() -> str | None:
    """Why the tests could not use PostgreSQL at ``POSTGRES_URL`` (log in, then create and drop
    a database, as every test does), or None."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_URL, connect_timeout=5, autocommit=True)
    except Exception as exc:
        return f"cannot log in to PostgreSQL as {_where(POSTGRES_URL)}: {_first_line(exc)}"
    name = f"callbridge_check_{uuid.uuid4().hex[:12]}"
    try:
        with admin:
            admin.execute(f'CREATE DATABASE "{name}"')
            admin.execute(f'DROP DATABASE "{name}"')
    except Exception as exc:
        return f"{_where(POSTGRES_URL)} cannot create a database: {_first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str]) -> int:
    if argv == ["shell"]:
        print(shell())
        return 0
    if argv[:1] == ["check"]:
        checks = {"rabbitmq": rabbitmq_problem, "postgres": postgres_problem}
        problems = [checks[name]() for name in argv[1:] or checks]
        for problem in filter(None, problems):
            print(problem, file=sys.stderr)
        return 1 if any(problems) else 0
    print("usage: python -m tests.service_urls shell | check [rabbitmq|postgres]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
