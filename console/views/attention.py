"""What needs a person: campaigns whose creation outcome is unknown (*Resolve*: it exists, or
send it again), reports that could not be fetched (*Fetch report now*), events the
relay set aside (shown with why, and how to put them back). Each action
calls what the CLI's command calls (``handlers.actions``), goes to the audit log, and the
browser is sent to its entry."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for

from adapters.store import State
from console.app import console
from console.security import acting, current_actor
from handlers import actions, manual_report
from handlers.settlement import UNKNOWN
from schemas.platform import is_campaign_id

blueprint = Blueprint("attention", __name__, url_prefix="/attention")

SHOWN = 200
MAX_ID = 255


@blueprint.get("/")
def listing():
    store = console().store
    return render_template(
        "attention.html",
        unknown=store.campaigns_waiting(State.FAILED, outcome=UNKNOWN, limit=SHOWN),
        report_failed=store.campaigns_waiting(State.REPORT_FAILED, outcome=None, limit=SHOWN),
        set_aside=store.set_aside(limit=SHOWN),
        shown=SHOWN,
    )


@blueprint.post("/resolve")
@acting
def resolve():
    tools = console()
    request_id = _field("request_id")
    group = _group()
    how = request.form.get("how")
    if how == "resend":
        told = actions.resend(tools.store, request_id, group=group)
        action, subject = actions.RESOLVE_RESEND, f"campaign {group}"
    elif how == "created":
        campaign_id = _campaign_id()
        told = actions.resolve_as_created(
            tools.settings, tools.store, request_id, campaign_id, group=group
        )
        action, subject = actions.RESOLVE_CREATED, f"campaign {group}: {campaign_id}"
    else:
        abort(400, "Resolve how: the campaign exists, or send it again?")
    entry = told.audit(tools.store, current_actor(), action, request_id=request_id, subject=subject)
    return redirect(url_for("audit_log.entry", entry_id=entry), code=303)


@blueprint.post("/report")
@acting
def fetch_report():
    tools = console()
    campaign_id = _campaign_id()
    found = tools.store.find_by_campaign(campaign_id)
    told = actions.fetch_report(
        tools.settings, tools.store, manual_report.ReportArgs(campaign_id=campaign_id)
    )
    entry = told.audit(
        tools.store,
        current_actor(),
        actions.FETCH_REPORT,
        request_id=found.request_id if found else None,
        subject=str(campaign_id),
    )
    return redirect(url_for("audit_log.entry", entry_id=entry), code=303)


def _field(name: str) -> str:
    value = request.form.get(name, "").strip()
    if not value or len(value) > MAX_ID:
        abort(400, f"The form has no {name}.")
    return value


def _group() -> int:
    text = request.form.get("group", "").strip()
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0
    if value < 1:
        abort(400, "Which campaign of the request? (its group: 1, 2, ...)")
    return value


def _campaign_id() -> int:
    text = request.form.get("campaign_id", "").strip()
    value = int(text) if text.isascii() and text.isdigit() and len(text) < 20 else 0
    if not is_campaign_id(value):
        abort(400, "A campaign id is a number from 1 to 2^63 - 1.")
    return value
