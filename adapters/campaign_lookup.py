"""Does a campaign exist on the platform? Only the sandbox can say: the platform has no lookup.

``callbridge resolve --campaign-id N`` settles an unknown outcome on an operator's word. When
``IS74_API_URL`` is the sandbox (its answers carry ``Server: is74-sandbox/…``), its control API
``GET /_sandbox/campaigns/N`` says whether N exists, so a mistyped id can be refused. Anything
else — the real platform, an error, no answer — is "could not check". The token is not sent:
the control API needs none, and a platform must not be handed it for a path it does not serve.
"""

from __future__ import annotations

import requests

from adapters.config import Settings
from adapters.platform_client import MAX_CONNECT_TIMEOUT

SANDBOX_SERVER = "is74-sandbox/"
LOOKUP_PATH = "/_sandbox/campaigns/{campaign_id}"


def sandbox_has_campaign(settings: Settings, campaign_id: int) -> bool | None:
    """True or False when the platform is a sandbox that answered; None: could not check."""
    url = settings.is74_api_url + LOOKUP_PATH.format(campaign_id=int(campaign_id))
    timeout = (
        min(MAX_CONNECT_TIMEOUT, settings.http_timeout_seconds),
        settings.http_timeout_seconds,
    )
    try:
        # stream: only the status and headers are read, never a body of unknown size.
        with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as answer:
            if not answer.headers.get("Server", "").startswith(SANDBOX_SERVER):
                return None
            return {200: True, 404: False}.get(answer.status_code)
    except requests.RequestException:
        return None
