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
from handlers.audit import DONE, FAILED, REFUSED, record
from handlers.dead_letters import broker_failures, drop, look, replay, replay_summary, show

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
    settings = tools.settings
    key = None if request.form.get("all") == "yes" else _key(request.form)
    try:
        _present, outcomes = replay(settings, key=key, limit=LIMIT)
    except _failures(settings) as exc:
        lines = [f"{_failed(exc)}; {_still_there(settings)}"]
        return _done("dead_letters.replay", FAILED, lines, subject=key)
    lines = [outcome.line(settings.call_requests_queue) for outcome in outcomes]
    if key is not None and not outcomes:
        lines.append(f"no dead letter with id {key} among the first {LIMIT}")
    lines.append(replay_summary(outcomes))
    replayed = any(outcome.replayed for outcome in outcomes) or (key is None and not outcomes)
    request_id = outcomes[0].letter.request_id if key is not None and outcomes else None
    return _done(
        "dead_letters.replay",
        DONE if replayed else REFUSED,
        lines,
        subject=key or "all",
        request_id=request_id,
    )


@blueprint.post("/drop")
@acting
def drop_letter():
    settings = console().settings
    key = _key(request.form)
    if request.form.get("confirm") != "yes":
        abort(400, "A drop must be confirmed.")
    try:
        _present, dropped = drop(settings, key=key, limit=LIMIT)
    except _failures(settings) as exc:
        lines = [f"{_failed(exc)}; {_still_there(settings)}"]
        return _done("dead_letters.drop", FAILED, lines, subject=key)
    if dropped is None:
        lines = [f"no dead letter with id {key} among the first {LIMIT}"]
        return _done("dead_letters.drop", REFUSED, lines, subject=key)
    return _done(
        "dead_letters.drop",
        DONE if dropped.dropped else REFUSED,
        [dropped.line(settings.dead_letter_queue)],
        subject=key,
        request_id=dropped.letter.request_id,
    )


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


def _done(action: str, outcome: str, lines: list[str], **about):
    entry = record(console().store, current_actor(), action, outcome=outcome, lines=lines, **about)
    return redirect(url_for("audit_log.entry", entry_id=entry), code=303)


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
