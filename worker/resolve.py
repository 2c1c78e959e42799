"""``callbridge resolve REQUEST_ID``: settle a request whose creation outcome is unknown.

Such a request ended ``campaign.failed`` with ``outcome: "unknown"``: its POST may have reached
the platform, and the platform offers no way to look a campaign up. Someone checks on the
platform itself, then tells callbridge what they found:

- ``--campaign-id N``: the campaign exists. The request becomes ``created`` with that campaign,
  its report is scheduled as for any campaign, and the CRM gets ``campaign.created`` — event id
  ``<request_id>:campaign.created``, so not a repeat of the ``campaign.failed`` it holds.
- ``--resend``: it does not exist; create it now. The request goes back to ``received`` with a
  fresh retry budget and the next worker sends it. If the platform creates it, the CRM gets
  ``campaign.created``. If it fails again, the CRM hears nothing new: it already holds
  ``<request_id>:campaign.failed``, the contract fixes that event id, and a second event under
  it would be dropped as a repeat (by the outbox here, by any CRM de-duplicating). ``callbridge
  status`` shows how it ended. Refused once the calling window is over: a campaign created then
  would call no one.

Only ``failed`` with an unknown outcome is accepted, checked in the UPDATE that changes it, so
two operators (or an operator and ``--resend``'s worker) cannot both settle one request. This
process publishes the event itself, so it works with no worker running.
"""

from __future__ import annotations

import argparse
import sys

from handlers.create import created_outcome
from handlers.results import result
from schemas.events import CAMPAIGN_CREATED
from worker.config import Settings
from worker.logs import configure_logging, secrets_from
from worker.publish_now import PublishFailed, publish_events
from worker.store import RequestRow, SettleConflict, Store, open_store, utcnow

EXIT_OK = 0
EXIT_REFUSED = 1
# How long to wait for an event a running worker's relay is publishing at the same time.


class Refused(Exception):
    """Nothing was changed; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--campaign-id",
        type=_positive,
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
    store = open_store(settings.database_url, pool_size=1)
    store.create_schema()
    try:
        if args.resend:
            resend(store, args.request_id)
            return EXIT_OK
        event_id = resolve_created(settings, store, args.request_id, args.campaign_id)
        return publish(settings, store, args.request_id, event_id)
    except Refused as exc:
        print(f"callbridge resolve: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.engine.dispose()


def resolve_created(settings: Settings, store: Store, request_id: str, campaign_id: int) -> str:
    """Store the request as created with ``campaign_id`` and queue its event; the event id."""
    row = unknown_outcome(store, request_id)
    owner = store.find_by_campaign(campaign_id)
    if owner is not None:
        raise Refused(f"campaign {campaign_id} belongs to request {owner.request_id} already")
    changes, event = created_outcome(
        row,
        campaign_id,
        utcnow(),
        phones_rejected=store.request_details(row.request_id)["phones_rejected"],
    )
    with store.transaction() as conn:
        _settle(store, conn, row, changes)
        store.add_event(
            conn, result(settings, event, correlation_id=row.correlation_id, reply_to=row.reply_to)
        )
    print(
        f"request {request_id}: resolved as created, campaign {campaign_id}; its report is due "
        f"{event['report_due_at']}"
    )
    return event["event_id"]


def resend(store: Store, request_id: str) -> None:
    """Put the request back to ``received`` for a worker to send, with a fresh retry budget."""
    row = unknown_outcome(store, request_id)
    now = utcnow()
    if row.window_end is not None and row.window_end <= now:
        raise Refused(
            f"request {request_id}'s calling window ended at {row.window_end.isoformat()}; a "
            "campaign created now would call no one. If it exists, use --campaign-id"
        )
    changes = {
        "state": "received",
        "outcome": None,
        "attempts": 0,
        "first_attempt_at": None,
        "next_attempt_at": now,
        "owner": None,
    }
    with store.transaction() as conn:
        _settle(store, conn, row, changes)
    print(
        f"request {request_id}: back to received; the next worker sends it to the platform. "
        "Created, it publishes campaign.created; failed again, nothing new is published (the CRM "
        f"holds {request_id}:campaign.failed already): see `callbridge status {request_id}`"
    )


def unknown_outcome(store: Store, request_id: str) -> RequestRow:
    """The request, if its outcome is unknown; Refused otherwise."""
    row = store.get_request(request_id)
    if row is None:
        raise Refused(f"request {request_id} is unknown (never received on this database)")
    if (row.state, row.outcome) != ("failed", "unknown"):
        raise Refused(
            f"request {request_id} is {row.state} (outcome {row.outcome or 'none'}): only a "
            "failed request whose outcome is unknown can be resolved"
        )
    return row


def _settle(store: Store, conn, row: RequestRow, changes: dict) -> None:
    try:
        store.settle(
            conn,
            row.request_id,
            from_states=("failed",),
            owner=None,
            changes=changes,
            outcome="unknown",
        )
    except SettleConflict:
        raise Refused(f"request {row.request_id} was resolved meanwhile; nothing changed") from None


def publish(settings: Settings, store: Store, request_id: str, event_id: str) -> int:
    """Publish ``campaign.created`` now; a worker's relay may be publishing it too."""
    try:
        left = publish_events(settings, store, request_id, event_types={CAMPAIGN_CREATED})
    except PublishFailed as exc:
        print(
            f"callbridge resolve: could not publish {event_id} ({exc}); it stays "
            "queued and the next worker to run publishes it",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if left:
        print(f"{event_id} is not published yet; the worker's relay publishes it", file=sys.stderr)
        return EXIT_REFUSED
    print(f"published {event_id}")
    return EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive campaign id")
    return value
