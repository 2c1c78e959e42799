"""A request: its state and why, its campaigns, its timeline, its phones (masked) and its
events; and one event whole, masked as ``callbridge events`` shows it."""

from __future__ import annotations

import json

from flask import Blueprint, abort, render_template, request

from adapters.logs import PHONE_KEYS, mask_document, redact, secrets_from
from adapters.store import utcnow
from console.app import console
from handlers.reasons import reasons
from handlers.timeline import timeline

blueprint = Blueprint("request_page", __name__)

MAX_ID = 255
# The phones a page lists; a request may hold 50,000.
PHONES_SHOWN = 500
# An event larger than this is not decoded for a page (a report part may be megabytes).
EVENT_SHOWN_BYTES = 2 * 1024 * 1024


@blueprint.get("/request")
def show():
    store = console().store
    request_id = _id()
    row = store.get_request(request_id)
    if row is None:
        abort(404, f"No request {request_id} on this database.")
    campaigns = store.campaigns_of(request_id)
    contacts = store.contacts_of([campaign.id for campaign in campaigns])
    accepted = [
        (campaign.group_no, phone, external_id)
        for campaign in campaigns
        for phone, external_id in contacts.get(campaign.id, [])
    ]
    rejected = store.request_details(request_id)["phones_rejected"]
    return render_template(
        "request.html",
        row=row,
        campaigns=campaigns,
        why=reasons(store, row, campaigns, now=utcnow()),
        moments=timeline(store, row),
        accepted=accepted[:PHONES_SHOWN],
        accepted_count=len(accepted),
        rejected=rejected[:PHONES_SHOWN],
        rejected_count=len(rejected),
    )


@blueprint.get("/event")
def event():
    tools = console()
    event_id = _id()
    found = tools.store.outbox_event(event_id)
    if found is None:
        abort(404, f"No event {event_id} on this database.")
    body = bytes(found["body"])
    shown = None
    if len(body) <= EVENT_SHOWN_BYTES:
        secrets = secrets_from(tools.settings)
        text = body.decode("utf-8", "replace")
        try:
            phone_keys = PHONE_KEYS | {name.lower() for name in tools.settings.report_phone_fields}
            shown = mask_document(json.loads(text), secrets, phone_keys=phone_keys)
        except (ValueError, RecursionError):
            shown = redact(text, secrets)
    return render_template("event.html", event=found, body=shown, size=len(body))


def _id() -> str:
    value = request.args.get("id", "")
    if not value or len(value) > MAX_ID:
        abort(400, "Which one? (its id)")
    return value
