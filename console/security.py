"""What every page of the console is wrapped in: a login, headers that keep the browser strict,
the roles, and the sessions that were logged out.

- No page without a login: every endpoint but the login page and the stylesheet redirects to
  the login when the session names no user, a user who is gone, whose role or password has
  changed since (``User.fingerprint``), a session older than ``SESSION_LIFETIME`` or one that
  was logged out.
- The session is Flask's: a cookie signed with itsdangerous (``CONSOLE_SECRET_KEY``), HttpOnly,
  SameSite=Strict, Secure and ``__Host-`` prefixed when the console is served over HTTPS.
- Every POST carries a CSRF token (Flask-WTF's ``CSRFProtect``, installed by the app).
- Every answer forbids framing, sniffing, inline script and style, and caching of pages.
- ``acting``: a view that changes something refuses a viewer (403), whatever the form sent.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, abort, g, redirect, request, session, url_for

from console.users import User, Users
from handlers.audit import Actor

SESSION_LIFETIME = dt.timedelta(hours=8)
MAX_NEXT = 2000
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.log_in", "static"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: over HTTPS, CSRFProtect checks that a POST's Referer is this console.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class LoggedOut:
    """Sessions logged out before their cookie expired, refused until it would have."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, sid: str, now: float) -> None:
        with self._lock:
            self._until = {k: v for k, v in self._until.items() if v > now}
            self._until[sid] = now + SESSION_LIFETIME.total_seconds()

    def __contains__(self, sid: str) -> bool:
        with self._lock:
            return sid in self._until


def install(app: Flask, users: Users, logged_out: LoggedOut) -> None:
    """Require a login before every request, and add the headers to every answer."""

    @app.before_request
    def require_login() -> Response | None:
        g.user = session_user(users, logged_out)
        # The session is left as it is: a request the browser makes on its own (an icon) must
        # not wipe the login form's CSRF token.
        if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
            return redirect(url_for("auth.login", next=_here()))
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        if app.config["SESSION_COOKIE_SECURE"]:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response


def start_session(user: User) -> None:
    """A fresh session for ``user``: nothing of the anonymous one is kept."""
    session.clear()
    session.update(
        user=user.name,
        role=user.role,
        key=user.fingerprint,
        sid=secrets.token_urlsafe(16),
        at=time.time(),
    )


def end_session(logged_out: LoggedOut) -> None:
    if "sid" in session:
        logged_out.add(session["sid"], time.time())
    session.clear()


def session_user(users: Users, logged_out: LoggedOut) -> User | None:
    """The user the session is signed for, if it still stands."""
    user = users.get(session.get("user", ""))
    if user is None or session.get("role") != user.role or session.get("key") != user.fingerprint:
        return None
    started = session.get("at")
    if not isinstance(started, float | int) or time.time() - started > _lifetime():
        return None
    if session.get("sid") in logged_out:
        return None
    return user


def acting(view: Callable[..., Any]) -> Callable[..., Any]:
    """For a view that changes something: a viewer is refused (403)."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not g.user.can_act:
            abort(403)
        return view(*args, **kwargs)

    return guarded


def current_actor() -> Actor:
    """The user of this request, as the audit log names them."""
    return Actor(g.user.name, g.user.role, client_address())


def client_address() -> str:
    """The client's address (the proxy's forwarded one when ``CONSOLE_TRUSTED_PROXY`` is set:
    waitress puts it in REMOTE_ADDR)."""
    return request.remote_addr or "unknown"


def safe_next(target: str | None) -> str | None:
    """A path of this console to go back to after the login; never another site (browsers drop
    tabs and line breaks from a URL and read ``\\`` as ``/``, so ``/\t/evil`` would be one)."""
    if not target or not target.startswith("/") or len(target) > MAX_NEXT:
        return None
    if any(char <= " " or char == "\\" for char in target):
        return None
    parts = urllib.parse.urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def _here() -> str | None:
    return request.full_path.rstrip("?") if request.method == "GET" else None


def _lifetime() -> float:
    return SESSION_LIFETIME.total_seconds()
