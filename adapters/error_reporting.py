"""Error reports to Sentry, scrubbed of phones, add_data values and secrets.

What is reported, and how often:

* an exception escaping a ``job_scope`` block — once, with the job's tags (the scope re-raises
  it, so the caller's own handling still runs; a nested ``job_scope`` or a second capture of the
  same exception is dropped by the SDK's DedupeIntegration);
* a request that ended ``campaign.failed`` — one WARNING message event (``capture_failed``);
* an authentication pause — one ERROR message event per call of ``capture_auth_pause``; the
  caller calls it once when a pause starts, nothing here de-duplicates repeated calls;
* an event no queue took (``capture_unroutable``) — one WARNING per call; the relay calls it
  once per queue.

Contract rejections (``campaign.rejected``) are the CRM's mistakes, not ours: they are not sent.
ERROR log lines do not become events (they would duplicate the captures above); every log
line at INFO or above is kept as a breadcrumb instead.

Stack locals are never sent (``include_local_variables=False``): a frame that handles a
message, a campaign body or a report holds it in some variable, under a name no scrubber can
foresee, and the SDK renders nested values past a few levels as one string in which an add_data
object no longer looks like one. What an event carries instead is chosen: the exception's type
and message, the code's frames (file, function, line, source), the job's tags, and the log lines
before it as breadcrumbs. ``scrub_event`` still walks every part of every event with
``adapters.logs.redact_value``: values under sensitive keys (``add_data``, ``phones``, ``body``,
``data``, headers, tokens...) are dropped, and every other string — keys included — has its
phones, add_data objects and secrets redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration

from adapters.logs import redact_value, secrets_from

if TYPE_CHECKING:
    from adapters.config import Settings


def init_sentry(settings: Settings, *, release: str) -> bool:
    """Start the SDK when SENTRY_DSN is set; return whether it was started.

    ``send_default_pii`` is left unset: every 2.x release treats that as False, and recent ones
    (2.75 here) warn that setting it is deprecated.
    """
    if not settings.sentry_dsn:
        return False
    secrets = secrets_from(settings)
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=release,
        environment=settings.sentry_environment,
        include_local_variables=False,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=None)],
        before_send=partial(scrub_event, secrets=secrets),
        before_breadcrumb=partial(scrub_breadcrumb, secrets=secrets),
    )
    return True


def scrub_event(
    event: dict[str, Any], hint: dict[str, Any], *, secrets: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """``before_send``: a copy of the event with nothing personal or secret left in it."""
    return {
        key: _scrub_breadcrumbs(value, secrets)
        if key == "breadcrumbs"
        else redact_value(value, secrets)
        for key, value in event.items()
    }


def scrub_breadcrumb(
    crumb: dict[str, Any], hint: dict[str, Any], *, secrets: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """``before_breadcrumb``: like ``scrub_event``, but a crumb's own ``data`` is walked, not
    dropped — it holds the log line's extra fields (request_id, campaign_id...)."""
    return {key: redact_value(value, secrets) for key, value in crumb.items()}


@contextmanager
def job_scope(
    stage: str,
    *,
    request_id: str | None = None,
    campaign_id: int | None = None,
    project_id: int | None = None,
) -> Iterator[None]:
    """One isolation scope per message or claimed job, so tags never leak between threads.

    An exception escaping the block is captured with the tags and re-raised: the caller still
    decides what happens to the job (retry, fail, nack).
    """
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("stage", stage)
        tags = {"request_id": request_id, "campaign_id": campaign_id, "project_id": project_id}
        for name, value in tags.items():
            if value is not None:
                scope.set_tag(name, str(value))
        try:
            yield
        except Exception as exc:
            sentry_sdk.capture_exception(exc)
            raise


def capture_exception(exc: BaseException) -> None:
    """Report an exception the caller handles itself (so it never escapes a ``job_scope``)."""
    sentry_sdk.capture_exception(exc)


def capture_failed(*, request_id: str, outcome: str, status: int | None, message: str) -> None:
    """Report a request that ended ``campaign.failed``: the platform refused it, or its fate is
    unknown and an operator must resolve it."""
    with sentry_sdk.new_scope() as scope:
        scope.set_level("warning")
        scope.set_tag("request_id", request_id)
        scope.set_tag("outcome", outcome)
        scope.set_tag("status", str(status) if status is not None else "none")
        scope.set_context("platform_error", {"status": status, "message": message})
        scope.fingerprint = ["campaign.failed", outcome, str(status)]
        sentry_sdk.capture_message(f"campaign.failed: outcome {outcome}, HTTP status {status}")


def capture_auth_pause(*, status: int, message: str) -> None:
    """Report that the platform refused our credentials and intake is paused."""
    with sentry_sdk.new_scope() as scope:
        scope.set_level("error")
        scope.set_tag("status", str(status))
        scope.set_context("platform_error", {"status": status, "message": message})
        scope.fingerprint = ["platform.auth_pause", str(status)]
        sentry_sdk.capture_message(f"platform refused the API credentials (HTTP {status})")


def capture_unroutable(*, queue: str, results_queue: str) -> None:
    """Report that events addressed to ``queue`` (a request's reply_to) found no such queue, and
    go to ``results_queue`` instead."""
    with sentry_sdk.new_scope() as scope:
        scope.set_level("warning")
        scope.set_tag("queue", queue[:200])
        scope.fingerprint = ["event.unroutable", queue]
        sentry_sdk.capture_message(
            f"no queue {queue!r}: its events go to {results_queue!r} instead"
        )


def flush(timeout: float = 5.0) -> None:
    """Send what is queued; SIGTERM skips atexit, so the worker calls this on shutdown."""
    sentry_sdk.flush(timeout=timeout)


def _scrub_breadcrumbs(value: object, secrets: tuple[str, ...]) -> object:
    """The event's ``{"values": [crumb, ...]}``: each crumb as ``scrub_breadcrumb`` would."""
    if not (isinstance(value, Mapping) and isinstance(value.get("values"), list)):
        return redact_value(value, secrets)
    return {
        key: [_scrub_crumb(crumb, secrets) for crumb in item]
        if key == "values"
        else redact_value(item, secrets)
        for key, item in value.items()
    }


def _scrub_crumb(crumb: object, secrets: tuple[str, ...]) -> object:
    if isinstance(crumb, Mapping):
        return scrub_breadcrumb(dict(crumb), {}, secrets=secrets)
    return redact_value(crumb, secrets)
