"""The operator's actions, whole: what ``callbridge resolve`` and ``callbridge report`` do, and
what the console's buttons do, by the same code; and how a replay or a drop of dead letters is
written to the audit log.

Each returns a ``Told``: what came of it (``done``; ``refused``: nothing changed; ``failed``:
stored, but the events could not be published yet, and the next worker's relay publishes
them), the lines the operator is told, and the problem when there is one. The CLI prints the
lines and the problem (on stderr); the console and the CLI both write it to the audit log.
"""

from __future__ import annotations

import dataclasses

from adapters.config import Settings
from adapters.platform_client import PlatformClient
from adapters.store import Store, utcnow
from handlers import manual_report, resolve
from handlers.audit import DONE, FAILED, REFUSED, Actor, record
from handlers.context import StepContext
from handlers.dead_letters import Dropped, ReplayOutcome, replay_summary
from handlers.publish_now import PublishFailed, publish_events
from schemas.events import CAMPAIGN_CREATED, CAMPAIGN_REPORT
from schemas.platform import format_utc_timestamp

RESOLVE_CREATED = "resolve.created"
RESOLVE_RESEND = "resolve.resend"
FETCH_REPORT = "report.fetch"
EXIT_CODES = {DONE: 0, FAILED: 1, REFUSED: 1}


@dataclasses.dataclass(frozen=True)
class Told:
    outcome: str
    lines: list[str]
    problem: str | None = None
    exit_code: int = 0

    @classmethod
    def of(cls, outcome: str, lines: list[str], problem: str | None = None, code: int = 1) -> Told:
        return cls(outcome, lines, problem, 0 if outcome == DONE else code)

    def audit(
        self,
        store: Store,
        actor: Actor,
        action: str,
        *,
        request_id: str | None,
        subject: str | None = None,
    ) -> int:
        return record(
            store,
            actor,
            action,
            outcome=self.outcome,
            lines=[*self.lines, *([self.problem] if self.problem else [])],
            request_id=request_id,
            subject=subject,
        )


def resolve_as_created(
    settings: Settings, store: Store, request_id: str, campaign_id: int, *, group: int | None
) -> Told:
    """The platform did create it, as ``campaign_id``: store it so, settle its request and
    publish what that queued."""
    lines: list[str] = []
    try:
        if resolve.check_campaign(settings, campaign_id):
            lines.append(f"campaign {campaign_id} exists on the sandbox")
        else:
            lines.append(
                f"could not check that campaign {campaign_id} exists: the platform has no "
                "lookup; make sure it is the one you found"
            )
        resolved = resolve.resolve_created(settings, store, request_id, campaign_id, group=group)
    except resolve.Refused as exc:
        return Told.of(REFUSED, lines, str(exc))
    lines.append(
        f"{resolve.name(resolved.campaign)}: resolved as created, campaign {campaign_id}; its "
        f"report is due {format_utc_timestamp(resolved.report_due_at)}"
    )
    if resolved.event is None:
        lines.append(
            f"request {request_id} waits for its other campaigns: its campaign.created goes out "
            "once every one is settled"
        )
        return Told.of(DONE, lines)
    event_id = resolved.event["event_id"]
    try:
        left = publish_events(settings, store, request_id, event_types={CAMPAIGN_CREATED})
    except PublishFailed as exc:
        problem = (
            f"could not publish {event_id} ({exc}); it stays queued and the next worker to run "
            "publishes it"
        )
        return Told.of(FAILED, lines, problem)
    if left:
        problem = f"{event_id} is not published yet; the worker's relay publishes it"
        return Told.of(FAILED, lines, problem)
    return Told.of(DONE, [*lines, f"published {event_id}"])


def resend(store: Store, request_id: str, *, group: int | None) -> Told:
    """The platform did not create it: a worker sends it again."""
    try:
        campaign = resolve.resend(store, request_id, group=group)
    except resolve.Refused as exc:
        return Told.of(REFUSED, [], str(exc))
    return Told.of(
        DONE,
        [
            f"{resolve.name(campaign)}: back to received; the next worker sends it to the "
            "platform. Created, it publishes campaign.created; failed again after the request's "
            "outcome went out, nothing new is published (the CRM holds it already): see "
            f"`callbridge status {request_id}`"
        ],
    )


def fetch_report(settings: Settings, store: Store, args: manual_report.ReportArgs) -> Told:
    """Fetch a campaign's report now, store it and publish it (``args.preview`` aside: the
    CLI prints a preview itself)."""
    platform = PlatformClient(settings)
    ctx = StepContext(settings, store, platform, owner=manual_report.NOT_A_WORKER)
    try:
        plan = manual_report.plan_report(store, args, now=utcnow())
        stored = manual_report.fetch_and_store(ctx, plan)
    except manual_report.Refused as exc:
        return Told.of(REFUSED, [], str(exc), exc.code)
    finally:
        platform.close()
    lines = [
        f"{plan.heading}: {stored.rows} rows, {stored.missing} missing, stored as "
        f"{stored.parts} campaign.report part(s) for {plan.period_text}"
    ]
    queue = plan.job.reply_to or settings.call_results_queue
    try:
        left = publish_events(settings, store, plan.job.request_id, event_types={CAMPAIGN_REPORT})
    except PublishFailed as exc:
        problem = (
            f"could not publish ({exc}); the report stays queued and the next worker to run "
            "publishes it"
        )
        return Told.of(FAILED, lines, problem)
    if left:
        problem = (
            f"{len(left)} part(s) not yet published to {queue}; they stay queued and the next "
            "worker to run publishes them"
        )
        return Told.of(FAILED, lines, problem)
    return Told.of(DONE, [*lines, f"published to {queue}"])


def audit_replay(
    store: Store, actor: Actor, settings: Settings, key: str | None, outcomes: list[ReplayOutcome]
) -> int:
    """Write a replay to the audit log: done when a message went back (or there was none to
    replay), refused when every one was kept or the one named is not there; the entry's id."""
    lines = [outcome.line(settings.call_requests_queue) for outcome in outcomes]
    if key is not None and not outcomes:
        lines.append(f"no dead letter with id {key} in {settings.dead_letter_queue}")
    lines.append(replay_summary(outcomes))
    done = any(outcome.replayed for outcome in outcomes) or (key is None and not outcomes)
    return record(
        store,
        actor,
        "dead_letters.replay",
        outcome=DONE if done else REFUSED,
        lines=lines,
        subject=key or "all",
        request_id=outcomes[0].letter.request_id if key is not None and outcomes else None,
    )


def audit_drop(
    store: Store, actor: Actor, settings: Settings, key: str, dropped: Dropped | None
) -> int:
    """Write a drop to the audit log; the entry's id."""
    if dropped is None:
        lines = [f"no dead letter with id {key} in {settings.dead_letter_queue}"]
    else:
        lines = [dropped.line(settings.dead_letter_queue)]
    return record(
        store,
        actor,
        "dead_letters.drop",
        outcome=DONE if dropped is not None and dropped.dropped else REFUSED,
        lines=lines,
        subject=key,
        request_id=dropped.letter.request_id if dropped is not None else None,
    )
