"""``python -m bench.console``: every page of the operator's console on a large store.

A PostgreSQL database beside the tests' is filled (``bench.console_data``: 1,000,000 requests
and 10,000,000 events by default, with their campaigns, contacts, attempts and audit entries),
then each page is asked for through the console's WSGI app, logged in, ``--samples`` times
after a warm-up, and its p50 and p95 are printed: a table, then one JSON line. The overview's
figures are read in the background, at most every 10 s; how long one read of them takes is
timed on its own, and not held to the target. The target is a p95 under 200 ms for every page;
the exit status is 1 when one misses it, 2 when the bench cannot run.

Filling takes minutes and gigabytes: ``--keep`` leaves the database for another run, which
names it with ``--database`` and skips the fill.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator

import psycopg

from adapters.config import load_settings
from adapters.store import open_store
from bench import console_data
from console.app import console, create_app
from console.users import hash_password, read_users_file
from console.views.overview import read_figures
from tests.service_urls import POSTGRES_URL, database_url

TARGET_P95_MS = 200.0
FIGURES = "overview figures, read afresh (in the background)"
WARM_UP = 3
PASSWORD = "bench"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _database(args.database, keep=args.keep or bool(args.database)) as url:
            if not args.database:
                started = time.monotonic()
                console_data.fill(url, requests=args.requests, events=args.events)
                print(f"filled in {time.monotonic() - started:.0f} s", file=sys.stderr)
            timings = time_pages(url, samples=args.samples)
    except (psycopg.Error, console_data.FillError) as exc:
        print(f"bench.console: {exc}", file=sys.stderr)
        return 2
    print(_table(timings))
    print(json.dumps({name: _summary(ms) for name, ms in timings.items()}))
    pages = [ms for name, ms in timings.items() if name != FIGURES]
    return 1 if any(_p95(ms) >= TARGET_P95_MS for ms in pages) else 0


def time_pages(url: str, *, samples: int) -> dict[str, list[float]]:
    """Each page's answer times in milliseconds, ``samples`` of them after a warm-up."""
    store = open_store(url, pool_size=2)
    store.create_schema()  # the indexes of this callbridge, on a database kept from before
    with tempfile.NamedTemporaryFile("w", suffix=".users") as users_file:
        users_file.write(f"bench operator {hash_password(PASSWORD)}\n")
        users_file.flush()
        settings = load_settings({"DATABASE_URL": url, "CONSOLE_USERS_FILE": users_file.name})
        app = create_app(settings, read_users_file(pathlib.Path(users_file.name)), store)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "bench", "password": PASSWORD, "csrf_token": token})
    timings: dict[str, list[float]] = {}
    with app.app_context():
        tools = console()
        _time(timings, FIGURES, lambda: read_figures(tools), max(3, samples // 5))
    try:
        for name, path in console_data.pages(store):
            for _ in range(WARM_UP):
                _get(client, path)
            timings[name] = [_get(client, path) for _ in range(samples)]
            print(f"{name}: p95 {_p95(timings[name]):.1f} ms", file=sys.stderr, flush=True)
    finally:
        store.engine.dispose()
    return timings


def _time(timings: dict, name: str, work, samples: int) -> None:
    ms = []
    for _ in range(samples):
        started = time.perf_counter()
        work()
        ms.append((time.perf_counter() - started) * 1000)
    timings[name] = ms
    print(f"{name}: p95 {_p95(ms):.1f} ms", file=sys.stderr, flush=True)


def _get(client, path: str) -> float:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise console_data.FillError(f"GET {path} answered {answer.status_code}")
    return elapsed


def _p95(ms: list[float]) -> float:
    return statistics.quantiles(ms, n=20, method="inclusive")[-1]


def _summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(_p95(ms), 1)}


def _table(timings: dict[str, list[float]]) -> str:
    width = max(len(name) for name in timings)
    lines = [f"| {'page':{width}} | p50 | p95 | target |", f"| {'-' * width} | --- | --- | --- |"]
    for name, ms in timings.items():
        summary = _summary(ms)
        target = "—" if name == FIGURES else f"< {TARGET_P95_MS:.0f} ms"
        lines.append(
            f"| {name:{width}} | {summary['p50_ms']:.1f} ms | {summary['p95_ms']:.1f} ms "
            f"| {target} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def _database(name: str | None, *, keep: bool) -> Iterator[str]:
    name = name or f"callbridge_console_bench_{uuid.uuid4().hex[:8]}"
    if not _exists(name):
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        if keep:
            print(f"kept database {name}: --database {name} measures it again", file=sys.stderr)
        else:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _exists(name: str) -> bool:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.console",
        description="Time every page of the operator's console on a large PostgreSQL store.",
    )
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=40, help="answers timed per page")
    parser.add_argument("--keep", action="store_true", help="keep the filled database")
    parser.add_argument("--database", help="measure this database, kept by an earlier --keep")
    return parser


if __name__ == "__main__":
    sys.exit(main())
