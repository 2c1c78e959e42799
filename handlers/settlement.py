"""A request's outcome, decided once every campaign it was planned as is settled.

Whoever settles a campaign's creation — the creation step, orphan settlement, an operator's
``callbridge resolve`` — calls ``settle_request`` in the same transaction. While a campaign of
the request is unsettled nothing more happens. The last one to settle gives the request its
outcome and queues its outcome event, with the request's row locked so that two sibling
campaigns settled at once by two workers queue exactly one:

- a request of one campaign gets v1's events exactly: ``campaign.created``, or
  ``campaign.failed`` with that campaign's error;
- a request of several gets ``campaign.created`` when at least one campaign was created:
  ``campaign_id`` the first created, ``report_due_at`` the latest, ``campaigns`` the created
  ones, the contacts of campaigns not created in ``phones_rejected`` (reason
  ``campaign not created: <platform message>``) and those of campaigns whose outcome is unknown
  in ``phones_unknown``; else ``campaign.failed``, ``unknown`` if any campaign's outcome is.

A campaign settled after its request's outcome event went out (an operator resolved an unknown
outcome) is late: created, it gets a ``campaign.created`` of its own — under v1's id for a
request of one campaign, as v1 did, and ``<request_id>:campaign.created:<group>`` carrying that
campaign alone otherwise; failed again, nothing is published (the CRM holds the request's
outcome already), only the stored outcome is brought up to date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Connection

from adapters.config import Settings
from adapters.store import UNSETTLED, CampaignRow, State, Store
from handlers.results import result
from schemas.events import Several, campaign_created, campaign_failed

CREATED = "created"
NOT_CREATED = "not_created"
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class Settled:
    """How one campaign's creation ended: ``outcome`` created, not_created or unknown."""

    outcome: str
    campaign_id: int | None = None
    report_due_at: dt.datetime | None = None
    status: int | None = None
    message: str = ""


@dataclasses.dataclass(frozen=True)
class RequestOutcome:
    """What settling a campaign queued: the event, and the request's outcome as metrics count
    it (None for a late campaign's event: the request had its outcome already)."""

    event: dict
    counted: str | None


def settle_request(
    settings: Settings,
    store: Store,
    conn: Connection,
    campaign: CampaignRow,
    settled: Settled,
    now: dt.datetime,
) -> RequestOutcome | None:
    """After ``campaign`` was settled as ``settled`` in ``conn``'s transaction: the request's
    outcome (or the late campaign's event) if one is due now, its event queued."""
    if campaign.several:
        found = _of_several(settings, store, conn, campaign, settled, now)
    else:
        found = _of_one(store, conn, campaign, settled, now)
    if found is not None:
        store.add_event(
            conn,
            result(
                settings,
                found.event,
                correlation_id=campaign.correlation_id,
                reply_to=campaign.reply_to,
            ),
        )
    return found


def _of_one(
    store: Store, conn: Connection, campaign: CampaignRow, settled: Settled, now: dt.datetime
) -> RequestOutcome | None:
    state = State.CREATED if settled.outcome == CREATED else State.FAILED
    counted: str | None = _counted(settled.outcome)
    rejected = store.settle_request(
        conn,
        campaign.request_id,
        from_states=(State.PENDING,),
        state=state,
        outcome=settled.outcome,
    )
    if rejected is None:  # late: the CRM holds this request's campaign.failed
        counted = None
        rejected = store.settle_request(
            conn,
            campaign.request_id,
            from_states=(State.FAILED,),
            state=state,
            outcome=settled.outcome,
        )
        if state == State.FAILED or rejected is None:
            return None
    if state == State.FAILED:
        event = campaign_failed(
            request_id=campaign.request_id,
            status=settled.status,
            message=settled.message,
            outcome=settled.outcome,
            occurred_at=now,
        )
    else:
        event = campaign_created(
            request_id=campaign.request_id,
            campaign_id=settled.campaign_id,
            project_id=campaign.project_id,
            phones_accepted=campaign.phones_accepted,
            phones_rejected=rejected,
            report_due_at=settled.report_due_at,
            occurred_at=now,
        )
    return RequestOutcome(event, counted)


def _of_several(
    settings: Settings,
    store: Store,
    conn: Connection,
    campaign: CampaignRow,
    settled: Settled,
    now: dt.datetime,
) -> RequestOutcome | None:
    request = store.lock_request(conn, campaign.request_id)
    siblings = store.campaigns_of(campaign.request_id, conn)
    if request.state != State.PENDING:
        return _late(settings, store, conn, campaign, settled, siblings, now)
    if any(sibling.state in UNSETTLED for sibling in siblings):
        return None
    created = [sibling for sibling in siblings if sibling.outcome == CREATED]
    outcome = CREATED if created else _failed_outcome(siblings)
    rejected = store.settle_request(
        conn,
        campaign.request_id,
        from_states=(State.PENDING,),
        state=State.CREATED if created else State.FAILED,
        outcome=outcome,
    )
    if not created:
        first = next(sibling for sibling in siblings if sibling.outcome == outcome)
        event = campaign_failed(
            request_id=campaign.request_id,
            status=first.last_status,
            message=f"none of the {len(siblings)} campaigns was created; campaign "
            f"{first.group_no}: {first.last_error}",
            outcome=outcome,
            occurred_at=now,
        )
        return RequestOutcome(event, _counted(outcome))
    left_out = [sibling for sibling in siblings if sibling.outcome != CREATED]
    contacts = store.contacts_of([sibling.id for sibling in left_out], conn)
    for sibling in left_out:
        if sibling.outcome == NOT_CREATED:
            reason = f"campaign not created: {sibling.last_error}"
            rejected.extend(
                {"phone": phone, "external_id": external_id, "reason": reason}
                for phone, external_id in contacts[sibling.id]
            )
    unknown = [
        {"phone": phone, "external_id": external_id, "group": sibling.group_no}
        for sibling in left_out
        if sibling.outcome == UNKNOWN
        for phone, external_id in contacts[sibling.id]
    ]
    event = campaign_created(
        request_id=campaign.request_id,
        campaign_id=created[0].campaign_id,
        project_id=campaign.project_id,
        phones_accepted=sum(sibling.phones_accepted or 0 for sibling in created),
        phones_rejected=rejected,
        report_due_at=max(sibling.report_due_at for sibling in created),
        occurred_at=now,
        several=Several([_summary(settings, sibling) for sibling in created], unknown),
    )
    return RequestOutcome(event, _counted(CREATED))


def _late(
    settings: Settings,
    store: Store,
    conn: Connection,
    campaign: CampaignRow,
    settled: Settled,
    siblings: Sequence[CampaignRow],
    now: dt.datetime,
) -> RequestOutcome | None:
    """A campaign of a request of several, settled after the request's outcome event."""
    if settled.outcome != CREATED:
        store.settle_request(
            conn,
            campaign.request_id,
            from_states=(State.FAILED,),
            state=State.FAILED,
            outcome=_failed_outcome(siblings),
        )
        return None
    store.settle_request(
        conn,
        campaign.request_id,
        from_states=(State.FAILED, State.CREATED),
        state=State.CREATED,
        outcome=CREATED,
    )
    (now_created,) = (sibling for sibling in siblings if sibling.id == campaign.id)
    event = campaign_created(
        request_id=campaign.request_id,
        campaign_id=settled.campaign_id,
        project_id=campaign.project_id,
        phones_accepted=campaign.phones_accepted,
        phones_rejected=[],
        report_due_at=settled.report_due_at,
        occurred_at=now,
        several=Several([_summary(settings, now_created)], late_group=campaign.group_no),
    )
    return RequestOutcome(event, None)


def _summary(settings: Settings, campaign: CampaignRow) -> dict:
    """A created campaign as ``campaign.created``'s ``campaigns`` lists it."""
    return {
        "campaign_id": campaign.campaign_id,
        "date": campaign.platform_date,
        "start_time": campaign.platform_start,
        "end_time": campaign.platform_end,
        "timezone": settings.platform_timezone,
        "phones_accepted": campaign.phones_accepted,
        "report_due_at": campaign.report_due_at,
    }


def _failed_outcome(campaigns: Sequence[CampaignRow]) -> str:
    return UNKNOWN if any(campaign.outcome == UNKNOWN for campaign in campaigns) else NOT_CREATED


def _counted(outcome: str) -> str:
    return CREATED if outcome == CREATED else f"failed_{outcome}"
