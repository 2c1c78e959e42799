"""``callbridge health``: is a worker alive and keeping up? One line, and an exit status.

Made for a liveness probe and for cron-style alerting; the checks are ``handlers.health``'s.
Exit 0 with ``ok: ...``, or 1 with ``unhealthy: ...`` naming every check that failed.
"""

from __future__ import annotations

import argparse
import socket

from adapters.config import Settings
from handlers.health import Limits, check

# Each limit's option, the Limits field it sets, and what it bounds.
_LIMIT_OPTIONS = (
    ("--max-heartbeat-age", "heartbeat", "newest worker heartbeat may be this old"),
    ("--max-outbox-age", "outbox", "oldest unpublished event may be this old"),
    ("--max-due-age", "due", "a request may wait this long past its due time"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    for flag, field, bounds in _LIMIT_OPTIONS:
        default = getattr(defaults, field)
        parser.add_argument(
            flag,
            type=_seconds,
            default=default,
            metavar="SECONDS",
            help=f"{bounds} (default {default:g})",
        )
    parser.add_argument(
        "--max-deliveries",
        type=_count,
        default=defaults.deliveries,
        metavar="N",
        help=f"a message may come back this many times (default {defaults.deliveries})",
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help=f"count only workers on this host ({socket.gethostname()}): for a liveness probe",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    limits = Limits(
        args.max_heartbeat_age, args.max_outbox_age, args.max_due_age, args.max_deliveries
    )
    health = check(settings, limits, host=socket.gethostname() if args.local else None)
    print(health.line)
    return health.exit_code


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds > 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("must be an integer >= 2 (a first delivery is no loop)")
    return value
