"""Settling a request whose creation outcome is unknown, as an operator decides it.

Such a request ended ``campaign.failed`` with ``outcome: "unknown"``: its POST may have reached
the platform, and the platform offers no way to look a campaign up. Someone checks on the
platform itself, then tells callbridge what they found:

- the campaign exists (``resolve_created``): the request becomes ``created`` with that campaign,
  its report is scheduled as for any campaign, and the CRM gets ``campaign.created`` — event id
  ``<request_id>:campaign.created``, so not a repeat of the ``campaign.failed`` it holds;
- it does not exist (``resend``): the request goes back to ``received`` with a fresh retry
  budget and the next worker sends it. If the platform creates it, the CRM gets
  ``campaign.created``. If it fails again, the CRM hears nothing new: it already holds
  ``<request_id>:campaign.failed``, the contract fixes that event id, and a second event under
  it would be dropped as a repeat. Refused once the calling window is over: a campaign created
  then would call no one.

Only ``failed`` with an unknown outcome is accepted, checked in the UPDATE that changes it, so
two operators (or an operator and ``resend``'s worker) cannot both settle one request.
"""

from __future__ import annotations

from adapters.campaign_lookup import sandbox_has_campaign
from adapters.config import Settings
from adapters.store import RequestRow, SettleConflict, State, Store, utcnow
from handlers.create import created_outcome
from handlers.results import result


class Refused(Exception):
    """Nothing was changed; the message says why."""


def resolve_created(settings: Settings, store: Store, request_id: str, campaign_id: int) -> dict:
    """Store the request as created with ``campaign_id`` and queue its event; the event."""
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
    return event


def check_campaign(settings: Settings, campaign_id: int) -> bool:
    """Whether the platform confirmed that ``campaign_id`` exists; Refused when it said it does
    not. Only the sandbox can tell: against the real platform this is False (not checked)."""
    found = sandbox_has_campaign(settings, campaign_id)
    if found is False:
        raise Refused(
            f"campaign {campaign_id} does not exist on the sandbox at {settings.is74_api_url}; "
            "its log names the campaign of each call it answered"
        )
    return found is True


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
        "state": State.RECEIVED,
        "outcome": None,
        "attempts": 0,
        "first_attempt_at": None,
        "next_attempt_at": now,
        "owner": None,
    }
    with store.transaction() as conn:
        _settle(store, conn, row, changes)


def unknown_outcome(store: Store, request_id: str) -> RequestRow:
    """The request, if its outcome is unknown; Refused otherwise."""
    row = store.get_request(request_id)
    if row is None:
        raise Refused(f"request {request_id} is unknown (never received on this database)")
    if (row.state, row.outcome) != (State.FAILED, "unknown"):
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
            from_states=(State.FAILED,),
            owner=None,
            changes=changes,
            outcome="unknown",
        )
    except SettleConflict:
        raise Refused(f"request {row.request_id} was resolved meanwhile; nothing changed") from None
