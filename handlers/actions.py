"""The operator's actions on a request, whole: what ``callbridge resolve`` and ``callbridge
report`` do and the console's buttons do, each ending in what the operator is told and what the
audit log keeps.

Each returns a ``Told``: ``done``, ``refused`` (nothing changed, the lines say why) or
``failed`` (done in the store, but the events could not be published yet: the next worker's
relay publishes them); and the lines, as the CLI prints them.
"""

from __future__ import annotations

import dataclasses

from adapters.config import Settings
from adapters.platform_client import PlatformClient
from adapters.store import Store, utcnow
from handlers import manual_report, resolve
from handlers.audit import DONE, FAILED, REFUSED, Actor, record
from handlers.context import StepContext
from handlers.publish_now import PublishFailed, publish_events
from schemas.events import CAMPAIGN_CREATED, CAMPAIGN_REPORT
from schemas.platform import format_utc_timestamp

RESOLVE_CREATED = "resolve.created"
RESOLVE_RESEND = "resolve.resend"
FETCH_REPORT = "report.fetch"


@dataclasses.dataclass(frozen=True)
class Told:
    outcome: str
    lines: list[str]

    def audit(
        self, store: Store, actor: Actor, action: str, *, request_id: str, subject: str | None
    ) -> int:
        return record(
            store,
            actor,
            action,
            outcome=self.outcome,
            lines=self.lines,
            request_id=request_id,
            subject=subject,
        )


def resolve_as_created(settings: Settings, store: Store, request_id: str, campaign_id: int) -> Told:
    """The platform did create it, as ``campaign_id``: store it so and publish
    ``campaign.created``."""
    lines: list[str] = []
    try:
        if resolve.check_campaign(settings, campaign_id):
            lines.append(f"campaign {campaign_id} exists on the sandbox")
        else:
            lines.append(
                f"could not check that campaign {campaign_id} exists: the platform has no "
                "lookup; make sure it is the one you found"
            )
        event = resolve.resolve_created(settings, store, request_id, campaign_id)
    except resolve.Refused as exc:
        return Told(REFUSED, [*lines, str(exc)])
    lines.append(
        f"request {request_id}: resolved as created, campaign {campaign_id}; its report is due "
        f"{event['report_due_at']}"
    )
    return _published(settings, store, request_id, {CAMPAIGN_CREATED}, lines)


def resend(store: Store, request_id: str) -> Told:
    """The platform did not create it: a worker sends it again."""
    try:
        resolve.resend(store, request_id)
    except resolve.Refused as exc:
        return Told(REFUSED, [str(exc)])
    return Told(
        DONE,
        [
            f"request {request_id}: back to received; the next worker sends it to the platform. "
            "Created, it publishes campaign.created; failed again, nothing new is published (the "
            f"CRM holds {request_id}:campaign.failed already): see `callbridge status "
            f"{request_id}`"
        ],
    )


def fetch_report(settings: Settings, store: Store, campaign_id: int) -> Told:
    """Fetch a campaign's report now (its request ``report_failed``, or due) and publish it."""
    args = manual_report.ReportArgs(campaign_id=campaign_id)
    platform = PlatformClient(settings)
    ctx = StepContext(settings, store, platform, owner=manual_report.NOT_A_WORKER)
    try:
        plan = manual_report.plan_report(store, args, now=utcnow())
        stored = manual_report.fetch_and_store(ctx, plan)
    except manual_report.Refused as exc:
        return Told(REFUSED, [str(exc)])
    finally:
        platform.close()
    start, end = plan.period
    lines = [
        f"campaign {campaign_id} (request {plan.job.request_id}): {stored.rows} rows, "
        f"{stored.missing} missing, stored as {stored.parts} campaign.report part(s) for "
        f"{format_utc_timestamp(start)} .. {format_utc_timestamp(end)}"
    ]
    return _published(settings, store, plan.job.request_id, {CAMPAIGN_REPORT}, lines)


def _published(
    settings: Settings, store: Store, request_id: str, event_types: set[str], lines: list[str]
) -> Told:
    """Publish the request's events of those types now; a worker's relay may be at it too."""
    try:
        left = publish_events(settings, store, request_id, event_types=event_types)
    except PublishFailed as exc:
        lines.append(
            f"could not publish ({exc}); the events stay queued and the next worker to run "
            "publishes them"
        )
        return Told(FAILED, lines)
    if left:
        lines.append(
            f"{', '.join(left)} not published yet: queued, the next worker's relay publishes it"
        )
        return Told(FAILED, lines)
    lines += [f"published {event_type} of request {request_id}" for event_type in event_types]
    return Told(DONE, lines)
