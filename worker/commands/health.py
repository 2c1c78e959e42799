"""``callbridge health``: is a worker alive and keeping up? One line, and an exit status.

Made for a liveness probe and for cron-style alerting; the checks are ``handlers.health``'s.
Exit 0 with ``ok: ...``, or 1 with ``unhealthy: ...`` naming every check that failed.
"""

from __future__ import annotations

import argparse
import socket

from adapters.config import STORE, Settings
from handlers.health import SETTLE_MARGIN_SECONDS, Limits, check

USES = (STORE,)
# Each limit's option, the Limits field it sets, and what it bounds.
_LIMIT_OPTIONS = (
    ("--max-heartbeat-age", "heartbeat", "newest worker heartbeat may be this old"),
    ("--max-outbox-age", "outbox", "oldest unpublished event may be this old"),
    ("--max-due-age", "due", "a campaign may wait this long past its due time"),
    (
        "--max-platform-down",
        "platform_down",
        "a worker may get no answer from the platform this long",
    ),
    ("--max-unknown-age", "unknown", "an unknown outcome may wait this long for `resolve`"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    for flag, field, bounds in _LIMIT_OPTIONS:
        default = getattr(defaults, field)
        parser.add_argument(
            flag,
            dest=field,
            type=_seconds,
            default=default,
            metavar="SECONDS",
            help=f"{bounds} (default {default:g})",
        )
    parser.add_argument(
        "--max-step-age",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="a live worker's step may hold a campaign (sending, reporting) this long "
        f"(default HTTP_CALL_DEADLINE_SECONDS + {SETTLE_MARGIN_SECONDS:g})",
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
        **{field: getattr(args, field) for _, field, _ in _LIMIT_OPTIONS},
        step=args.max_step_age,
        deliveries=args.max_deliveries,
    )
    health = check(settings, limits, host=socket.gethostname() if args.local else None)
    print(health.line)
    return health.exit_code


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a number of seconds > 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("must be an integer >= 2 (a first delivery is no loop)")
    return value
