"""``callbridge status``: what became of a request and each of its campaigns, as the store has
it, and why (``handlers.reasons``).

A request of one campaign reads as one block, as it always did; a request of several shows the
request, then each campaign: its window as the platform was told it and in the request's own
zone, phones, state, campaign id and report.
"""

from __future__ import annotations

import argparse
import datetime as dt
from zoneinfo import ZoneInfo

from adapters.config import STORE, Settings
from adapters.store import CampaignRow, RequestRow, State, Store, open_store, utcnow
from handlers.reasons import campaign_reasons, describe_error, reasons

USES = (STORE,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request_id")


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    return print_status(settings, args.request_id)


def print_status(settings: Settings, request_id: str) -> int:
    store = open_store(settings.database_url, must_exist=True)
    store.create_schema()
    row = store.get_request(request_id)
    events = store.events_of(request_id)
    if row is None and not events:
        print(f"request {request_id}: unknown (never received by a worker on this database)")
        return 1
    if row is None:
        print(f"request {request_id}: not a CRM request (a `callbridge report` of a campaign)")
    else:
        _print_request(settings, store, row)
    _print_events(events)
    return 0


def _print_request(settings: Settings, store: Store, row: RequestRow) -> None:
    campaigns = store.campaigns_of(row.request_id)
    rejected = len(store.request_details(row.request_id)["phones_rejected"])
    why = reasons(store, row, campaigns, now=utcnow())
    print(f"request {row.request_id}")
    if len(campaigns) == 1:
        (campaign,) = campaigns
        _lines(
            "  ",
            [
                *_campaign_lines(settings, row, campaign, rejected=rejected),
                *why,
                *campaign_reasons(store, campaign),
            ],
        )
        return
    _lines(
        "  ",
        [
            ("state", row.state),
            ("outcome", row.outcome),
            ("project id", row.project_id),
            ("purpose", row.purpose),
            ("phones rejected", rejected if row.state != State.REJECTED else None),
            ("received", _time(row.received_at)),
            ("campaigns", len(campaigns) or None),
            *why,
        ],
    )
    for campaign in campaigns:
        print(f"  campaign {campaign.group_no} of {len(campaigns)}")
        _lines(
            "    ", [*_campaign_lines(settings, row, campaign), *campaign_reasons(store, campaign)]
        )


def _campaign_lines(
    settings: Settings, row: RequestRow, campaign: CampaignRow, *, rejected: int | None = None
) -> list[tuple[str, object]]:
    """A campaign's lines; with ``rejected`` also its request's (a request of one campaign)."""
    retrying_report = campaign.state == State.CREATED and campaign.report_attempts > 0
    alone = rejected is not None
    return [
        ("state", campaign.state),
        ("outcome", campaign.outcome),
        ("campaign id", campaign.campaign_id),
        ("project id", row.project_id if alone else None),
        ("window", _window(campaign, settings.platform_timezone)),
        (
            "",
            _window(campaign, row.timezone) if row.timezone != settings.platform_timezone else None,
        ),
        ("phones accepted", campaign.phones_accepted),
        ("phones rejected", rejected),
        ("attempts", campaign.attempts),
        (
            "next attempt",
            _time(campaign.next_attempt_at) if campaign.state == State.RETRY else None,
        ),
        ("last error", _error(campaign) if campaign.state == State.RETRY else None),
        ("received", _time(row.received_at) if alone else None),
        ("report due", _time(campaign.report_due_at)),
        ("report attempts", campaign.report_attempts or None),
        ("next report try", _time(campaign.next_attempt_at) if retrying_report else None),
    ]


def _lines(indent: str, lines: list[tuple[str, object]]) -> None:
    for label, value in lines:
        if value is not None:
            print(f"{indent}{label + ':' if label else '':17}{value}")


def _window(campaign: CampaignRow, zone_name: str | None) -> str | None:
    """The campaign's calling window as read in ``zone_name``."""
    if zone_name is None or campaign.window_start is None or campaign.window_end is None:
        return None
    zone = ZoneInfo(zone_name)
    start, end = campaign.window_start.astimezone(zone), campaign.window_end.astimezone(zone)
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M}–{until} {zone_name}"


def _error(campaign: CampaignRow) -> str | None:
    if campaign.last_error is None:
        return None
    return describe_error({"status": campaign.last_status, "message": campaign.last_error[:200]})


def _print_events(events: list[dict]) -> None:
    print(f"  events ({len(events)}):")
    for event in events:
        print(f"    {event['event_id']}  → {event['queue']}  {_publication(event)}")


def _publication(event: dict) -> str:
    """Whether the event went out; if not, whether it waits or was set aside, and why."""
    if event["published_at"]:
        return f"published {_time(event['published_at'])}"
    if event["set_aside_at"]:
        return (
            f"SET ASIDE {_time(event['set_aside_at'])}, never published: "
            f"{event['set_aside_reason']}"
        )
    if event["refusals"]:
        return (
            f"NOT published yet: refused by the broker {event['refusals']} time(s), next try "
            f"{_time(event['retry_at'])}"
        )
    return "NOT published yet"


def _time(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds").replace("+00:00", "Z")
