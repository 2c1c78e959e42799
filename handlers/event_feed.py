"""A request's events as the store has them: what was published, and what is waiting to be.

Read from the outbox, so it shows what the CRM got (or will get) whether or not anyone consumed
it since: result events and the dead-lettered original alike, each body decoded and shown as
``adapters.logs.mask_document`` shows a message (phones masked, add_data values hidden).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from adapters.config import Settings
from adapters.logs import PHONE_KEYS, mask_document, redact, secrets_from
from adapters.store import Store

BATCH = 100


@dataclasses.dataclass(frozen=True)
class ShownEvent:
    """One outbox row, its body ready to print."""

    id: int
    event_id: str
    event_type: str
    queue: str
    created_at: dt.datetime
    published_at: dt.datetime | None
    body: object  # the decoded JSON, masked; or the text, redacted, when it is not JSON


def events_after(
    settings: Settings, store: Store, request_id: str, *, after: int = 0
) -> list[ShownEvent]:
    """The request's events queued after outbox id ``after`` (the next ``BATCH`` of them)."""
    secrets = secrets_from(settings)
    phone_keys = PHONE_KEYS | {name.lower() for name in settings.report_phone_fields}
    return [
        ShownEvent(
            id=row["id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            queue=row["queue"],
            created_at=row["created_at"],
            published_at=row["published_at"],
            body=_shown_body(row["body"], secrets, phone_keys),
        )
        for row in store.outbox_of(request_id, after=after, limit=BATCH)
    ]


def _shown_body(body: bytes, secrets: tuple[str, ...], phone_keys: frozenset[str]) -> object:
    text = bytes(body).decode("utf-8", "replace")
    try:
        return mask_document(json.loads(text), secrets, phone_keys=phone_keys)
    except (ValueError, RecursionError):
        return redact(text, secrets)
