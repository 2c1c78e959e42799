"""Settling a campaign whose creation outcome is unknown, as an operator decides it.

Such a campaign ended ``failed`` with outcome ``unknown``: its POST may have reached the
platform, and the platform offers no way to look a campaign up. Someone checks on the platform
itself, then tells callbridge what they found:

- the campaign exists (``resolve_created``): it becomes ``created`` with that campaign id, its
  report is scheduled as for any campaign, and its request is settled as the creation step
  would have settled it (``handlers.settlement``): the request's ``campaign.created`` if this
  was the last campaign the request waited for, else a late ``campaign.created`` of its own —
  ``<request_id>:campaign.created`` for a request of one campaign, so not a repeat of the
  ``campaign.failed`` the CRM holds; ``<request_id>:campaign.created:<group>`` otherwise;
- it does not exist (``resend``): the campaign goes back to ``received`` with a fresh retry
  budget and the next worker sends the body stored for it (nothing is planned again). Created,
  it is settled as above. Failed again after the request's outcome event, the CRM hears nothing
  new: it holds that outcome already, and a second event under its id would be dropped as a
  repeat. Refused once the campaign's window is over: created then, it would call no one.

A request of several campaigns names the one with ``group`` (the ``group`` of
``phones_unknown``); left out, it is the request's only campaign with an unknown outcome. Only
``failed`` with an unknown outcome is accepted, checked in the UPDATE that changes it, so two
operators (or an operator and ``resend``'s worker) cannot both settle one campaign.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from adapters.campaign_lookup import sandbox_has_campaign
from adapters.config import Settings
from adapters.store import CampaignRow, SettleConflict, State, Store, utcnow
from handlers.create import created_changes
from handlers.settlement import UNKNOWN, settle_request


class Refused(Exception):
    """Nothing was changed; the message says why."""


@dataclasses.dataclass(frozen=True)
class Resolved:
    """The campaign resolved as created, when its report is due, and the event queued (None
    while the request waits for another of its campaigns)."""

    campaign: CampaignRow
    report_due_at: dt.datetime
    event: dict | None


def resolve_created(
    settings: Settings, store: Store, request_id: str, campaign_id: int, *, group: int | None = None
) -> Resolved:
    """Store the campaign as created with ``campaign_id``, and settle its request."""
    campaign = unknown_campaign(store, request_id, group)
    owner = store.find_by_campaign(campaign_id)
    if owner is not None:
        raise Refused(f"campaign {campaign_id} belongs to request {owner.request_id} already")
    changes, settled = created_changes(campaign, campaign_id)
    with store.transaction() as conn:
        _settle(store, conn, campaign, changes)
        outcome = settle_request(settings, store, conn, campaign, settled, utcnow())
    return Resolved(campaign, settled.report_due_at, None if outcome is None else outcome.event)


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


def resend(store: Store, request_id: str, *, group: int | None = None) -> CampaignRow:
    """Put the campaign back to ``received`` for a worker to send, with a fresh retry budget."""
    campaign = unknown_campaign(store, request_id, group)
    now = utcnow()
    if campaign.window_end is not None and campaign.window_end <= now:
        raise Refused(
            f"{name(campaign)}'s calling window ended at {campaign.window_end.isoformat()}; a "
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
        _settle(store, conn, campaign, changes)
    return campaign


def unknown_campaign(store: Store, request_id: str, group: int | None) -> CampaignRow:
    """The campaign to resolve, if its outcome is unknown; Refused otherwise."""
    request = store.get_request(request_id)
    if request is None:
        raise Refused(f"request {request_id} is unknown (never received on this database)")
    campaigns = store.campaigns_of(request_id)
    if group is not None:
        chosen = [campaign for campaign in campaigns if campaign.group_no == group]
        if not chosen:
            raise Refused(f"request {request_id} has no campaign {group} (it has {len(campaigns)})")
        campaign = chosen[0]
    elif not campaigns:
        raise Refused(
            f"request {request_id} is {request.state} (outcome {request.outcome or 'none'}): "
            "only a failed campaign whose outcome is unknown can be resolved"
        )
    else:
        unknown = [campaign for campaign in campaigns if _is_unknown(campaign)]
        if len(unknown) > 1:
            groups = ", ".join(str(campaign.group_no) for campaign in unknown)
            raise Refused(
                f"request {request_id} has {len(unknown)} campaigns whose outcome is unknown "
                f"(--group {groups}): name one with --group"
            )
        campaign = unknown[0] if unknown else campaigns[0]
        if not unknown and len(campaigns) > 1:
            raise Refused(
                f"request {request_id} has no campaign whose outcome is unknown; see "
                f"`callbridge status {request_id}`"
            )
    if not _is_unknown(campaign):
        raise Refused(
            f"{name(campaign)} is {campaign.state} (outcome {campaign.outcome or 'none'}): "
            "only a failed campaign whose outcome is unknown can be resolved"
        )
    return campaign


def name(campaign: CampaignRow) -> str:
    """How the operator's messages name a campaign: by its request alone when it has one."""
    if not campaign.several:
        return f"request {campaign.request_id}"
    return f"request {campaign.request_id}, campaign {campaign.group_no}"


def _is_unknown(campaign: CampaignRow) -> bool:
    return (campaign.state, campaign.outcome) == (State.FAILED, UNKNOWN)


def _settle(store: Store, conn, campaign: CampaignRow, changes: dict) -> None:
    try:
        store.settle_campaign(
            conn,
            campaign.id,
            from_states=(State.FAILED,),
            owner=None,
            changes=changes,
            outcome=UNKNOWN,
        )
    except SettleConflict:
        raise Refused(f"{name(campaign)} was resolved meanwhile; nothing changed") from None
