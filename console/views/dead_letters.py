"""Dead letters: the list with reasons, one message whole, *Replay* (one, or all) and *Drop*
(after a page that shows the message and asks). Each calls what ``callbridge dead-letters``
calls (``handlers.dead_letters``): a replay moves back only what intake would now take, a drop
removes only what it would never take. Every action goes to the audit log, and the browser is
sent to its entry, which says what came of it."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from kombu.exceptions import KombuError

from adapters.broker import BrokerUnreachable
from adapters.config import Settings
from console.app import console
from console.security import acting, current_actor
from handlers.actions import audit_drop, audit_replay
from handlers.audit import FAILED, record
from handlers.dead_letters import (
    broker_failures,
    drop,
    look,
    replay,
    show,
)

blueprint = Blueprint("dead_letters", __name__, url_prefix="/dead-letters")

LIMIT = 200
MAX_KEY = 255


@blueprint.get("/")
def listing():
    settings = console().settings
    try:
        looked = look(settings, limit=LIMIT)
    except _failures(settings) as exc:
        return _broker_failed(exc)
    return render_template(
        "dead_letters.html",
        looked=looked,
        limit=LIMIT,
        queue=settings.dead_letter_queue,
    )


@blueprint.get("/message")
def message():
    return _shown("dead_letter.html")


@blueprint.get("/drop")
@acting
def confirm_drop():
    return _shown("dead_letter_drop.html")


@blueprint.post("/replay")
@acting
def replay_letters():
    tools = console()
    key = None if request.form.get("all") == "yes" else _key(request.form)
    try:
        _present, outcomes = replay(tools.settings, key=key, limit=LIMIT)
    except _failures(tools.settings) as exc:
        return _failed_action("dead_letters.replay", exc, key or "all")
    entry = audit_replay(tools.store, current_actor(), tools.settings, key, outcomes)
    return _to_entry(entry)


@blueprint.post("/drop")
@acting
def drop_letter():
    tools = console()
    key = _key(request.form)
    if request.form.get("confirm") != "yes":
        abort(400, "A drop must be confirmed.")
    try:
        _present, dropped = drop(tools.settings, key=key, limit=LIMIT)
    except _failures(tools.settings) as exc:
        return _failed_action("dead_letters.drop", exc, key)
    return _to_entry(audit_drop(tools.store, current_actor(), tools.settings, key, dropped))


def _shown(template: str):
    settings = console().settings
    key = _key(request.args)
    try:
        _present, found = show(settings, key=key, limit=LIMIT)
    except _failures(settings) as exc:
        return _broker_failed(exc)
    if found is None:
        abort(404, f"No dead letter with id {key} among the first {LIMIT} of the queue.")
    return render_template(template, shown=found, key=key)


def _key(values) -> str:
    key = values.get("id", "")
    if not key or len(key) > MAX_KEY:
        abort(400, "Which dead letter? (its id)")
    return key


def _failed_action(action: str, exc: BaseException, subject: str):
    tools = console()
    lines = [f"{_failed(exc)}; {_still_there(tools.settings)}"]
    entry = record(
        tools.store, current_actor(), action, outcome=FAILED, lines=lines, subject=subject
    )
    return _to_entry(entry)


def _to_entry(entry_id: int):
    """To the audit entry of what was just done: it says what came of it."""
    return redirect(url_for("audit_log.entry", entry_id=entry_id), code=303)


def _failures(settings: Settings) -> tuple[type[BaseException], ...]:
    return (BrokerUnreachable, KombuError, *broker_failures(settings))


def _failed(exc: BaseException) -> str:
    return (
        str(exc)
        if isinstance(exc, BrokerUnreachable)
        else f"the broker failed ({type(exc).__name__})"
    )


def _broker_failed(exc: BaseException):
    message = f"{_failed(exc)}; {_still_there(console().settings)}."
    return render_template("error.html", status=503, message=message), 503


def _still_there(settings: Settings) -> str:
    return (
        f"every message not reported replayed or dropped is still in {settings.dead_letter_queue}"
    )
