"""``callbridge dead-letters``: list the dead-letter queue, show a message, move messages back
for another try, or drop one that can never be replayed.

Listing and showing consume nothing; replaying moves back only what intake would now take, and
dropping removes only what it would not (see ``handlers.dead_letters``), and only with
``--yes``. Run it with the worker's environment: intake's checks use its settings.
"""

from __future__ import annotations

import argparse
import json
import sys

from amqp.exceptions import MessageNacked
from kombu.exceptions import OperationalError

from adapters import broker
from adapters.config import BROKER, QUEUES, STORE, Settings
from handlers.dead_letters import DeadLetter, Shown, drop, look, replay, show
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
    probe = broker.connect(settings)  # lazy: only asked which errors its transport raises
    errors = (OperationalError, MessageNacked, *probe.connection_errors, *probe.channel_errors)
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
    if dropped is None:
        return _none(settings, present, key, limit)
    letter = dropped.letter
    if not dropped.dropped:
        print(f"kept #{letter.position} id={letter.key}: {dropped.reason}")
        return EXIT_NOT_DONE
    queue = settings.dead_letter_queue
    print(f"dropped #{letter.position} id={letter.key} from {queue}: {dropped.reason}")
    return EXIT_OK


def replay_dead_letters(settings: Settings, *, key: str | None, limit: int) -> int:
    """Replay the message named ``key``, or every message when ``key`` is None."""
    present, outcomes = replay(settings, key=key, limit=limit)
    _header(settings, present, limit)
    for outcome in outcomes:
        letter = outcome.letter
        if outcome.replayed:
            print(f"replayed #{letter.position} id={letter.key} to {settings.call_requests_queue}")
        else:
            print(f"kept #{letter.position} id={letter.key}: {outcome.reason}")
    replayed = sum(outcome.replayed for outcome in outcomes)
    print(f"replayed {replayed}, kept {len(outcomes) - replayed}")
    if key is None:
        return EXIT_OK
    if not outcomes:
        return _none(settings, present, key, limit)
    return EXIT_OK if replayed else EXIT_NOT_DONE


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
