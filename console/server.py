"""Serving the console with waitress: a production WSGI server in pure Python, threads over
one process, so that the login throttle and the sessions logged out are seen by every request."""

from __future__ import annotations

import logging

import waitress

from adapters.config import Settings
from adapters.logs import configure_logging, secrets_from
from adapters.store import open_store
from console.app import create_app
from console.users import load_users

THREADS = 8
log = logging.getLogger("callbridge.console")


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Serve until interrupted; ConfigError (one line) when it cannot start."""
    users = load_users(settings)
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, secrets=secrets_from(settings)
    )
    store = open_store(settings.database_url, pool_size=THREADS, must_exist=True)
    store.create_schema()
    app = create_app(settings, users, store)
    proxy = settings.console_trusted_proxy
    behind_proxy = (
        {"trusted_proxy": proxy, "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}}
        if proxy
        else {}
    )
    server = waitress.create_server(
        app,
        host=host,
        port=port,
        threads=THREADS,
        ident="callbridge-console",
        clear_untrusted_proxy_headers=True,
        **behind_proxy,
    )
    log.info(
        "console started",
        extra={"url": f"http://{host}:{server.effective_port}/", "users": len(users.by_name)},
    )
    try:
        server.run()
    finally:
        server.close()
        store.engine.dispose()
