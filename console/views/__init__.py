"""The console's pages, one module each; ``BLUEPRINTS`` is every one of them."""

from __future__ import annotations

from console import auth
from console.views import audit_log, dead_letters, overview

BLUEPRINTS = (
    auth.blueprint,
    overview.blueprint,
    dead_letters.blueprint,
    audit_log.blueprint,
)
