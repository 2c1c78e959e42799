"""Logging in and out.

A failed login is written to the audit log and the log; while a name or an address is locked
by the throttle, even the right password is refused (429), and only the log hears of it, so
that a flood of guesses cannot fill the audit log.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, g, redirect, render_template, request, url_for

from console.app import console
from console.security import (
    client_address,
    current_actor,
    end_session,
    safe_next,
    start_session,
)
from handlers.audit import DONE, REFUSED, Actor, record

blueprint = Blueprint("auth", __name__)
log = logging.getLogger("callbridge.console")

MAX_NAME = 64
MAX_PASSWORD = 1024


@blueprint.get("/login")
def login():
    if g.user is not None:
        return redirect(url_for("overview.overview"))
    return render_template("login.html", next=safe_next(request.args.get("next")))


@blueprint.post("/login")
def log_in():
    tools = console()
    name = request.form.get("name", "")[:MAX_NAME].strip()
    password = request.form.get("password", "")[:MAX_PASSWORD]
    address = client_address()
    keys = tools.throttle.keys(name, address)
    target = safe_next(request.form.get("next"))
    locked = tools.throttle.locked_for(keys, time.monotonic())
    if locked:
        log.warning("console login refused: locked", extra={"user": name, "address": address})
        message = f"Too many failed logins: try again in {locked:.0f} s."
        return render_template("login.html", error=message, next=target), 429
    user = tools.users.check(name, password)
    # Only a known name is recorded: a password typed into the name field stays unwritten.
    shown = name if tools.users.get(name) is not None else "(unknown name)"
    if user is None:
        tools.throttle.failed(keys, time.monotonic())
        log.warning("console login refused", extra={"user": shown, "address": address})
        record(
            tools.store,
            Actor(shown, "-", address),
            "login",
            outcome=REFUSED,
            lines=["wrong name or password"],
        )
        return render_template("login.html", error="Wrong name or password.", next=target), 401
    tools.throttle.succeeded(keys)
    start_session(user)
    record(tools.store, Actor(user.name, user.role, address), "login", outcome=DONE, lines=[])
    return redirect(target or url_for("overview.overview"))


@blueprint.post("/logout")
def log_out():
    tools = console()
    record(tools.store, current_actor(), "logout", outcome=DONE, lines=[])
    end_session(tools.logged_out)
    return redirect(url_for("auth.login"))
