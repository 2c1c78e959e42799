"""``callbridge dead-letters``: list the dead-letter queue, and move messages back for another try.

Listing consumes nothing; replaying moves back only what intake would now take (see
``handlers.dead_letters``). Run it with the worker's environment: intake's checks use its
settings.
"""

from __future__ import annotations

import argparse
import sys

from amqp.exceptions import MessageNacked
from kombu.exceptions import OperationalError

from adapters import broker
from adapters.config import Settings
from handlers.dead_letters import look, replay

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
    try:
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
        print(letter.line())
    print(f"handed back {len(looked.letters)} message(s) unchanged")
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
        print(f"callbridge dead-letters: no dead letter with id {key}", file=sys.stderr)
    return EXIT_OK if replayed else EXIT_NOT_DONE


def _header(settings: Settings, present: int, limit: int) -> None:
    shown = f" (looking at the first {limit})" if present > limit else ""
    print(f"{settings.dead_letter_queue}: {present} message(s){shown}")
