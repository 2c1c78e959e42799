"""``callbridge dead-letters``: list the dead-letter queue, show a message, move messages back
for another try, or drop one that can never be replayed.

Listing and showing consume nothing; replaying moves back only what intake would now take, and
dropping removes only what it would not (see ``handlers.dead_letters``), and only with
``--yes``. Run it with the worker's environment: intake's checks use its settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator

from adapters.config import BROKER, QUEUES, STORE, Settings
from adapters.store import Store, open_store
from handlers.actions import audit_drop, audit_replay
from handlers.audit import cli_actor
from handlers.dead_letters import (
    DeadLetter,
    Shown,
    broker_failures,
    drop,
    look,
    replay,
    replay_summary,
    show,
)
from worker.commands import UsageError

USES = (BROKER, QUEUES, STORE)
EXIT_OK = 0
EXIT_NOT_DONE = 1
DEFAULT_LIMIT = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--replay", metavar="ID", help="move the message with this id back to the requests queue"
    )
    how.add_argument(
        "--replay-all", action="store_true", help="move every message back to the requests queue"
    )
    how.add_argument(
        "--show", metavar="ID", help="print the message with this id whole (phones masked)"
    )
    how.add_argument(
        "--drop",
        metavar="ID",
        help="remove the message with this id, if it can never be replayed (with --yes)",
    )
    parser.add_argument("--yes", action="store_true", help="confirm --drop")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"look at no more than the first N messages (default {DEFAULT_LIMIT})",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    errors = broker_failures(settings)
    if args.yes and args.drop is None:
        raise UsageError("--yes confirms --drop ID, and nothing else")
    try:
        if args.show is not None:
            return show_dead_letter(settings, key=args.show, limit=args.limit)
        if args.drop is not None and not args.yes:
            if show_dead_letter(settings, key=args.drop, limit=args.limit) == EXIT_OK:
                print(f"not dropped: add --yes to drop {args.drop}")
            return EXIT_NOT_DONE
        if args.drop is not None:
            return drop_dead_letter(settings, key=args.drop, limit=args.limit)
        if args.replay is None and not args.replay_all:
            return list_dead_letters(settings, limit=args.limit)
        return replay_dead_letters(settings, key=args.replay, limit=args.limit)
    except errors as exc:
        print(
            f"callbridge dead-letters: the broker failed ({type(exc).__name__}); every message "
            f"not reported replayed is still in {settings.dead_letter_queue}",
            file=sys.stderr,
        )
        return EXIT_NOT_DONE


def list_dead_letters(settings: Settings, *, limit: int) -> int:
    """Print one line per message, handing every one back."""
    looked = look(settings, limit=limit)
    _header(settings, looked.present, limit)
    for letter in looked.letters:
        _print_letter(letter)
    print(f"handed back {len(looked.letters)} message(s) unchanged")
    return EXIT_OK


def show_dead_letter(settings: Settings, *, key: str, limit: int) -> int:
    """Print one message whole, handing every one back."""
    present, found = show(settings, key=key, limit=limit)
    if found is None:
        return _none(settings, present, key, limit)
    _print_shown(found)
    return EXIT_OK


def drop_dead_letter(settings: Settings, *, key: str, limit: int) -> int:
    present, dropped = drop(settings, key=key, limit=limit)
    with _store(settings) as store:
        audit_drop(store, cli_actor(), settings, key, dropped)
    if dropped is None:
        return _none(settings, present, key, limit)
    print(dropped.line(settings.dead_letter_queue))
    return EXIT_OK if dropped.dropped else EXIT_NOT_DONE


def replay_dead_letters(settings: Settings, *, key: str | None, limit: int) -> int:
    """Replay the message named ``key``, or every message when ``key`` is None."""
    present, outcomes = replay(settings, key=key, limit=limit)
    with _store(settings) as store:
        audit_replay(store, cli_actor(), settings, key, outcomes)
    _header(settings, present, limit)
    for outcome in outcomes:
        print(outcome.line(settings.call_requests_queue))
    print(replay_summary(outcomes))
    if key is None:
        return EXIT_OK
    if not outcomes:
        return _none(settings, present, key, limit)
    return EXIT_OK if any(outcome.replayed for outcome in outcomes) else EXIT_NOT_DONE


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings.database_url, pool_size=1, must_exist=True)
    try:
        store.create_schema()
        yield store
    finally:
        store.engine.dispose()


def _print_letter(letter: DeadLetter) -> None:
    print(letter.line())
    for line in letter.errors:
        print(f"    {line}")


def _print_shown(shown: Shown) -> None:
    _print_letter(shown.letter)
    print(f"  properties: {json.dumps(shown.properties, ensure_ascii=False, default=str)}")
    print(f"  headers: {json.dumps(shown.headers, ensure_ascii=False, default=str)}")
    body = (
        shown.body
        if isinstance(shown.body, str)
        else json.dumps(shown.body, ensure_ascii=False, indent=2)
    )
    print(f"  body:\n{body}")


def _none(settings: Settings, present: int, key: str, limit: int) -> int:
    looked = f" among the first {limit}" if present > limit else ""
    queue = settings.dead_letter_queue
    print(
        f"callbridge dead-letters: no dead letter with id {key} in {queue}{looked}", file=sys.stderr
    )
    return EXIT_NOT_DONE


def _header(settings: Settings, present: int, limit: int) -> None:
    shown = f" (looking at the first {limit})" if present > limit else ""
    print(f"{settings.dead_letter_queue}: {present} message(s){shown}")
