"""The console's pages, one module each; ``BLUEPRINTS`` is every one of them."""

from __future__ import annotations

from console import auth
from console.views import (
    attention,
    audit_log,
    dead_letters,
    overview,
    request_page,
    requests,
)

BLUEPRINTS = (
    auth.blueprint,
    overview.blueprint,
    requests.blueprint,
    request_page.blueprint,
    attention.blueprint,
    dead_letters.blueprint,
    audit_log.blueprint,
)
