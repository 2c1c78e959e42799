"""The list of requests: filtered by state, project, purpose and the day received, searched by
``request_id``, ``external_id`` or campaign id, newest first, paged by key."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from flask import Blueprint, abort, render_template, request, url_for

from adapters.store import State
from adapters.store.browse import Key, RequestFilter
from console.app import console
from schemas.platform import is_campaign_id

blueprint = Blueprint("requests", __name__, url_prefix="/requests")

PAGE = 50
# A request's own states; each of its campaigns has its own (the request's page shows them).
REQUEST_STATES = (State.PENDING, State.CREATED, State.FAILED, State.REJECTED)
# A search never lists more requests than this (an external_id many requests share).
FOUND_LIMIT = 500
MAX_SEARCH = 128


@blueprint.get("/")
def listing():
    store = console().store
    narrowed, shown = _filter()
    after, before = _key("after"), _key("before")
    found = store.list_requests(narrowed, after=after, before=before, limit=PAGE + 1)
    more = len(found) > PAGE
    page = found[:PAGE] if before is None else found[-PAGE:]
    older = page[-1].key if page and (more or before is not None) else None
    newer = page[0].key if page and (after is not None or (before is not None and more)) else None
    return render_template(
        "requests.html",
        requests=page,
        shown=shown,
        states=REQUEST_STATES,
        older_url=_page_url(shown, "after", older),
        newer_url=_page_url(shown, "before", newer),
    )


def find_request_ids(text: str) -> tuple[str, ...]:
    """The requests a search names: by ``request_id``, by a contact's ``external_id``, by
    campaign id (digits)."""
    store = console().store
    found: list[str] = []
    if store.get_request(text) is not None:
        found.append(text)
    found += store.requests_with_external_id(text, limit=FOUND_LIMIT)
    if text.isascii() and text.isdigit() and is_campaign_id(int(text)):
        campaign = store.find_by_campaign(int(text))
        if campaign is not None:
            found.append(campaign.request_id)
    return tuple(dict.fromkeys(found))


def _filter() -> tuple[RequestFilter, dict[str, str]]:
    """The filter the query string asks for, and its fields as the form shows them."""
    args = request.args
    names = ("state", "project", "purpose", "from", "to", "q")
    shown = {name: args.get(name, "").strip()[:MAX_SEARCH] for name in names}
    if shown["state"] and shown["state"] not in REQUEST_STATES:
        abort(400, f"No such state: {shown['state'][:40]}.")
    project = shown["project"]
    if project and not (project.isascii() and project.isdigit() and len(project) < 19):
        abort(400, "A project is a number.")
    search = shown["q"]
    narrowed = RequestFilter(
        state=shown["state"] or None,
        project_id=int(project) if project else None,
        purpose=shown["purpose"] or None,
        received_from=_day(shown["from"]),
        received_to=_day(shown["to"], next_day=True),
        request_ids=find_request_ids(search) if search else None,
    )
    return narrowed, {name: value for name, value in shown.items() if value}


def _day(text: str, *, next_day: bool = False) -> dt.datetime | None:
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        abort(400, "A day is written YYYY-MM-DD.")
    moment = dt.datetime.combine(day, dt.time(), dt.UTC)
    return moment + dt.timedelta(days=1) if next_day else moment


def _key(name: str) -> Key | None:
    token = request.args.get(name)
    if not token:
        return None
    try:
        received_at, request_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return Key(dt.datetime.fromisoformat(received_at), str(request_id))
    except (ValueError, TypeError, binascii.Error):
        abort(400, "That page's key is not one this console made.")


def _page_url(shown: dict[str, str], direction: str, key: Key | None) -> str | None:
    if key is None:
        return None
    token = json.dumps([key.received_at.isoformat(), key.request_id]).encode()
    return url_for(
        "requests.listing", **shown, **{direction: base64.urlsafe_b64encode(token).decode()}
    )
