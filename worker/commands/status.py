"""``callbridge status``: what became of a request, as the store has it, and why."""

from __future__ import annotations

import argparse
import datetime as dt

from adapters.config import STORE, Settings
from adapters.store import RequestRow, State, Store, open_store, utcnow
from handlers.reasons import reasons

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
        _print_request(store, row)
    _print_events(events)
    return 0


def _print_request(store: Store, row: RequestRow) -> None:
    request_id = row.request_id
    details = store.request_details(request_id)
    retrying_report = row.state == State.CREATED and row.report_attempts > 0
    print(f"request {request_id}")
    for label, value in (
        ("state", row.state),
        ("outcome", row.outcome),
        ("campaign id", row.campaign_id),
        ("project id", row.project_id),
        ("phones accepted", len(details["contacts"])),
        ("phones rejected", len(details["phones_rejected"])),
        ("attempts", row.attempts),
        ("next attempt", _time(row.next_attempt_at) if row.state == State.RETRY else None),
        ("received", _time(row.received_at)),
        ("report due", _time(row.report_due_at)),
        ("report attempts", row.report_attempts or None),
        ("next report try", _time(row.next_attempt_at) if retrying_report else None),
    ):
        if value is not None:
            print(f"  {label + ':':17}{value}")
    for label, text in reasons(store, row, now=utcnow()):
        print(f"  {label + ':':17}{text}")


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
