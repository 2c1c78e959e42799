"""``callbridge events REQUEST_ID``: what was and is being published about a request.

Each event as the store's outbox holds it — queued when, published when (or not yet), to which
queue — and its body, phones masked. ``--follow`` goes on printing events as they are queued
and says when a waiting one is published, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import time

from adapters.config import STORE, Settings
from adapters.store import Store, open_store
from handlers.event_feed import ShownEvent, events_after
from schemas.platform import format_utc_timestamp

USES = (STORE,)
EXIT_OK = 0
EXIT_UNKNOWN = 1
FOLLOW_POLL_SECONDS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep printing events as they are queued and published, until Ctrl-C",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    store = open_store(settings.database_url, pool_size=1, must_exist=True)
    store.create_schema()
    try:
        last, waiting = _print_new(settings, store, args.request_id, after=0, waiting=[])
        if not args.follow:
            if last == 0:
                print(f"request {args.request_id}: no event stored")
                return EXIT_UNKNOWN
            return EXIT_OK
        print(f"following request {args.request_id}'s events (Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(FOLLOW_POLL_SECONDS)
            waiting = _print_published(store, waiting)
            last, waiting = _print_new(settings, store, args.request_id, last, waiting)
    finally:
        store.engine.dispose()


def _print_new(
    settings: Settings, store: Store, request_id: str, after: int, waiting: list[int]
) -> tuple[int, list[int]]:
    """Print every event queued after ``after``; the last id, and the ids still unpublished."""
    while batch := events_after(settings, store, request_id, after=after):
        for event in batch:
            _print_event(event)
            if event.published_at is None:
                waiting.append(event.id)
        after = batch[-1].id
    return after, waiting


def _print_published(store: Store, waiting: list[int]) -> list[int]:
    published = store.published_at(waiting)
    for event_id in waiting:
        if event_id in published:
            print(f"#{event_id} published {format_utc_timestamp(published[event_id])}", flush=True)
    return [event_id for event_id in waiting if event_id not in published]


def _print_event(event: ShownEvent) -> None:
    published = "NOT published yet"
    if event.published_at is not None:
        published = f"published {format_utc_timestamp(event.published_at)}"
    print(
        f"#{event.id} {event.event_type} {event.event_id} → {event.queue}, queued "
        f"{format_utc_timestamp(event.created_at)}, {published}"
    )
    body = event.body if isinstance(event.body, str) else json.dumps(event.body, ensure_ascii=False)
    print(f"  {body}", flush=True)
