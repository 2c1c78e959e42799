"""The console's WSGI application: Flask with Jinja2 templates, over the worker's store and
broker, configured by the worker's settings.

``create_app`` builds it; ``callbridge console`` serves it with waitress. The views are
server-rendered HTML with no script at all (a page that refreshes itself uses a ``<meta>``
refresh), so the Content-Security-Policy can forbid every script and inline style.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from adapters.config import Settings
from adapters.store import Store
from console import formatting, security
from console.security import SESSION_LIFETIME, LoggedOut
from console.throttle import LoginThrottle
from console.users import Users

T = TypeVar("T")
log = logging.getLogger("callbridge.console")

EXTENSION = "callbridge"
COOKIE = "callbridge_console"
# The pages named in the bar at the top, those that this console has.
NAVIGATION = (
    ("overview.overview", "Overview"),
    ("requests.listing", "Requests"),
    ("attention.listing", "Needs attention"),
    ("dead_letters.listing", "Dead letters"),
    ("suppressions.listing", "Suppressions"),
    ("audit_log.listing", "Audit log"),
)
# Forms carry a few fields: anything larger is not one of ours.
MAX_FORM_BYTES = 64 * 1024


@dataclasses.dataclass
class Console:
    """What the views use: the settings, the store, the users and the login throttle."""

    settings: Settings
    store: Store
    users: Users
    throttle: LoginThrottle = dataclasses.field(default_factory=LoginThrottle)
    logged_out: LoggedOut = dataclasses.field(default_factory=LoggedOut)
    _cached: dict[str, tuple[float, Any]] = dataclasses.field(default_factory=dict)
    _refreshing: set[str] = dataclasses.field(default_factory=set)
    _cache_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def cached(self, name: str, seconds: float, read: Callable[[], T]) -> tuple[T, float]:
        """What ``read`` returned, and how many seconds ago it was read.

        Read once, then at most every ``seconds``, in a thread of its own while the requests go
        on answering with the figures they have: no request waits for a read but the very
        first, and a store slow to count makes the figures older, not the page slower.
        """
        with self._cache_lock:
            found = self._cached.get(name)
            if found is None:
                found = self._cached[name] = (time.monotonic(), read())
            elif time.monotonic() - found[0] > seconds and name not in self._refreshing:
                self._refreshing.add(name)
                threading.Thread(
                    target=self._refresh, args=(name, read), name=f"console-{name}", daemon=True
                ).start()
        return found[1], time.monotonic() - found[0]

    def _refresh(self, name: str, read: Callable[[], Any]) -> None:
        try:
            value = read()
            with self._cache_lock:
                self._cached[name] = (time.monotonic(), value)
        except Exception:  # the page keeps the figures it had, and says how old they are
            log.exception("console figures could not be read", extra={"figures": name})
        finally:
            with self._cache_lock:
                self._refreshing.discard(name)


def console() -> Console:
    """The console the current request is served by."""
    return current_app.extensions[EXTENSION]


def create_app(settings: Settings, users: Users, store: Store) -> Flask:
    from console.views import BLUEPRINTS

    app = Flask(__name__)
    https = settings.console_https
    app.config.update(
        # Without a key of its own, the console signs with a new one at each start: every
        # session ends with the process.
        SECRET_KEY=settings.console_secret_key or secrets.token_hex(32),
        SESSION_COOKIE_NAME=f"__Host-{COOKIE}" if https else COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=https,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        # A form's token lasts as long as its session.
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
        PREFERRED_URL_SCHEME="https" if https else "http",
    )
    tools = Console(settings, store, users)
    app.extensions[EXTENSION] = tools
    CSRFProtect(app)
    security.install(app, users, tools.logged_out)
    formatting.install(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    navigation = [
        (endpoint, label) for endpoint, label in NAVIGATION if endpoint in app.view_functions
    ]
    app.context_processor(lambda: {"navigation": navigation})

    @app.errorhandler(CSRFError)
    def refused_form(error: CSRFError):
        return _error_page(400, "This form was not sent by this console's page, or it expired.")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return _error_page(error.code or 500, error.description or error.name)

    return app


def _error_page(status: int, message: str):
    return render_template("error.html", status=status, message=message), status
