"""The audit log: what operators did, newest first, by key; one entry with what came of it."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from console.app import console

blueprint = Blueprint("audit_log", __name__, url_prefix="/audit")

PAGE = 50


@blueprint.get("/")
def listing():
    before = request.args.get("before", type=int)
    entries = console().store.audit_before(before, limit=PAGE + 1)
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    return render_template(
        "audit_log.html",
        entries=entries,
        next_before=entries[-1].id if more else None,
    )


@blueprint.get("/<int:entry_id>")
def entry(entry_id: int):
    found = console().store.audit_entry(entry_id)
    if found is None:
        abort(404, f"No audit entry {entry_id}.")
    return render_template("audit_entry.html", entry=found)
