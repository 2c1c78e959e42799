"""``callbridge resolve REQUEST_ID``: settle a campaign whose creation outcome is unknown.

``--campaign-id N``: the platform did create it; ``--resend``: it did not, send it again (see
``handlers.resolve``); ``--group N`` names the campaign in a request of several. A campaign id
is checked where it can be (on the sandbox). This process publishes the event itself, so it
works with no worker running.
"""

from __future__ import annotations

import argparse

from adapters.config import BROKER, PLATFORM, QUEUES, STORE, Settings
from adapters.logs import configure_logging, secrets_from
from adapters.store import open_store
from handlers import actions
from handlers.audit import cli_actor
from worker.commands import campaign_id, tell

USES = (STORE, PLATFORM, BROKER, QUEUES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id")
    parser.add_argument(
        "--group",
        type=_group,
        metavar="N",
        help="the campaign of a request of several (the group of phones_unknown); "
        "default: its only campaign whose outcome is unknown",
    )
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--campaign-id",
        type=campaign_id,
        metavar="N",
        help="the platform did create it, as campaign N: publish campaign.created",
    )
    how.add_argument(
        "--resend",
        action="store_true",
        help="the platform did not create it: let a worker send it again now",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    configure_logging(level="WARNING", fmt=settings.log_format, secrets=secrets_from(settings))
    store = open_store(settings.database_url, pool_size=1, must_exist=True)
    store.create_schema()
    request_id = args.request_id
    try:
        if args.resend:
            told = actions.resend(store, request_id, group=args.group)
            action, subject = actions.RESOLVE_RESEND, None
        else:
            told = actions.resolve_as_created(
                settings, store, request_id, args.campaign_id, group=args.group
            )
            action, subject = actions.RESOLVE_CREATED, str(args.campaign_id)
        told.audit(store, cli_actor(), action, request_id=request_id, subject=subject)
    finally:
        store.engine.dispose()
    return tell(told, "callbridge resolve")


def _group(text: str) -> int:
    """A campaign's number in its request: 1, 2, ... (bounded as the store's column is)."""
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a campaign's group (1, 2, ...)")
    return value
