"""``callbridge resolve REQUEST_ID``: settle a request whose creation outcome is unknown.

``--campaign-id N``: the platform did create it; ``--resend``: it did not, send it again (see
``handlers.resolve``). A campaign id is checked where it can be (on the sandbox). This process
publishes the event itself, so it works with no worker running.
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
            told = actions.resend(store, request_id)
            told.audit(store, cli_actor(), actions.RESOLVE_RESEND, request_id=request_id)
        else:
            told = actions.resolve_as_created(settings, store, request_id, args.campaign_id)
            told.audit(
                store,
                cli_actor(),
                actions.RESOLVE_CREATED,
                request_id=request_id,
                subject=str(args.campaign_id),
            )
    finally:
        store.engine.dispose()
    return tell(told, "callbridge resolve")
