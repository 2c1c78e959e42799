"""The is74 platform's two calls, each answer settled into one outcome the worker acts on.

Creating a campaign is not idempotent and the platform offers no way to look one up, so the
client never sends ``POST /api/campaigns`` twice by itself: no urllib3 retries, no redirects
followed. What the worker may do next is decided by classifying the answer exactly as
guarantee 4 of the message contract says: only a call that never reached the platform (no
connection made), or a 429/503, may be tried again; a broken or unreadable answer is
``Unknown`` because the campaign may exist.

Every answer is read with bounds, whatever the platform sends: at most
``PLATFORM_MAX_ANSWER_BYTES`` of body, the whole call within ``HTTP_CALL_DEADLINE_SECONDS``
(``adapters.http_deadline``), JSON nested at most ``schemas.json_codec.ANSWER_MAX_DEPTH``
levels, and a campaign id that the stores can hold. A 2xx answer outside them is ``Unknown``
for creation (the campaign may exist) and a retryable ``ReportFailed`` for a report.

Messages carried by outcomes never hold the token or the request body; phone-like digit runs
the platform may echo are blanked too.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from adapters import http_deadline
from adapters.config import ConfigError, Settings
from schemas.json_codec import decode
from schemas.platform import read_campaign_id, shown_campaign_id

log = logging.getLogger("callbridge.platform")

CREATE_PATH = "/api/campaigns"
REPORT_PATH = "/api/analytics/{project_id}/report"
MAX_CONNECT_TIMEOUT = 5.0
MESSAGE_LIMIT = 500
USER_AGENT = "callbridge/0.1"
# Endpoint names given to the latency observer.
CREATE_ENDPOINT = "create"
REPORT_ENDPOINT = "report"

# observe(endpoint, outcome kind, seconds): how each platform call went, for metrics.
Observer = Callable[[str, str, float], None]

# A Russian number as people write it: +7 912 345-67-89, 8 (912) 345-67-89, 9123456789 ...
_PHONE_LIKE = re.compile(
    r"(?<![0-9])(?:(?:\+?7|8)[ (-]*|\()?[0-9]{3}[ )-]*[0-9]{3}[ -]*[0-9]{2}[ -]*[0-9]{2}(?![0-9])"
)
# A 422 may list an error per phone; the message keeps the first few.
ERRORS_SHOWN = 5
_MAX_CAUSE_DEPTH = 8
_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")
# How much of an answer is read at a time: the cap is checked after each piece.
CHUNK_BYTES = 256 * 1024
# What is kept of an answer too large to read, for the error's message.
TOO_LARGE_KEPT = 64 * 1024
# Errors raised while the request is prepared, before any connection: nothing was sent.
_NOT_SENT = requests.exceptions.InvalidHeader | requests.exceptions.InvalidURL


@dataclass(frozen=True)
class Created:
    """The platform created the campaign and said its id."""

    kind: ClassVar[str] = "created"
    campaign_id: int


@dataclass(frozen=True)
class RetryLater:
    """Nothing was created (no connection made, 429 or 503): safe to send again later."""

    kind: ClassVar[str] = "retry_later"
    status: int | None
    message: str
    retry_after: float | None


@dataclass(frozen=True)
class NotCreated:
    """The platform refused the campaign (a 4xx); sending it again would be refused again."""

    kind: ClassVar[str] = "not_created"
    status: int
    message: str


@dataclass(frozen=True)
class Unknown:
    """The body reached the platform but no readable answer came back: it may exist.

    ``shown_campaign_id``: the id the answer gave when it is no campaign id callbridge can hold
    (see ``schemas.platform.shown_campaign_id``), for the operator to look up.
    """

    kind: ClassVar[str] = "unknown"
    status: int | None
    message: str
    shown_campaign_id: str | None = None


@dataclass(frozen=True)
class AuthFailed:
    """401/403: the token is wrong, not the request; the worker pauses instead of failing it."""

    kind: ClassVar[str] = "auth_failed"
    status: int
    message: str


@dataclass(frozen=True)
class ReportFetched:
    """The analytics answer, decoded from JSON and otherwise as the platform gave it."""

    kind: ClassVar[str] = "fetched"
    data: object


@dataclass(frozen=True)
class ReportFailed:
    """The analytics call failed; it is safe to retry, and the caller does, with backoff."""

    kind: ClassVar[str] = "failed"
    status: int | None
    message: str
    retry_after: float | None


CreateOutcome = Created | RetryLater | NotCreated | Unknown | AuthFailed
ReportOutcome = ReportFetched | ReportFailed | AuthFailed


@dataclass(frozen=True)
class _Reply:
    """An answer as far as it was read: ``cut_short`` says why its body is not whole."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    cut_short: str | None


class PlatformClient:
    """One HTTP session to the platform, with the token, timeouts and no automatic retries.

    A ``session`` passed in is used as it is (its adapters included: only the client's own can
    cut a call at its deadline inside a blocking read); the client's own session never retries.
    ``observe`` hears the duration of every call.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        observe: Observer | None = None,
    ) -> None:
        if settings.auth_header_value is None:
            raise ConfigError("IS74_API_TOKEN is not set: the platform client needs it")
        self._base_url = settings.is74_api_url.rstrip("/")
        self._token = settings.is74_api_token or ""
        self._headers = {
            settings.is74_auth_header: settings.auth_header_value,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        read_timeout = settings.http_timeout_seconds
        self._timeout = (min(MAX_CONNECT_TIMEOUT, read_timeout), read_timeout)
        self._deadline = settings.http_call_deadline_seconds
        self._max_bytes = settings.platform_max_answer_bytes
        self._session = session or session_without_retries(
            settings.http_concurrency, self._base_url
        )
        self._observe = observe

    def create_campaign(self, body: bytes) -> CreateOutcome:
        """POST the campaign once and settle the answer (never raises for a platform problem)."""
        started = time.monotonic()
        try:
            reply = self._post(CREATE_PATH, body)
        except _CallFailed as failed:  # whatever broke, the body may have been sent
            outcome: CreateOutcome = self._create_error(failed)
        else:
            outcome = classify_create_answer(
                reply.status,
                reply.headers,
                reply.content,
                token=self._token,
                cut_short=reply.cut_short,
            )
        self._finished(CREATE_ENDPOINT, outcome.kind, started)
        return outcome

    def fetch_report(self, project_id: int, body: Mapping) -> ReportOutcome:
        """POST the analytics query once; the caller retries a ``ReportFailed`` with backoff."""
        started = time.monotonic()
        path = REPORT_PATH.format(project_id=int(project_id))
        try:
            reply = self._post(path, json.dumps(body).encode())
        except _CallFailed as failed:  # any failure of this safe call is retried
            outcome: ReportOutcome = ReportFailed(None, failed.message, None)
        else:
            outcome = classify_report_answer(
                reply.status,
                reply.headers,
                reply.content,
                token=self._token,
                cut_short=reply.cut_short,
            )
        self._finished(REPORT_ENDPOINT, outcome.kind, started)
        return outcome

    def close(self) -> None:
        self._session.close()

    def _post(self, path: str, body: bytes) -> _Reply:
        """Send once and read the answer within the deadline and the size cap; ``_CallFailed``
        when no answer came (its status line and headers did not arrive whole)."""
        with http_deadline.deadline(self._deadline) as call:
            try:
                response = self._session.post(
                    self._base_url + path,
                    data=body,
                    headers=self._headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except Exception as exc:
                raise _CallFailed(exc, _deadline_passed(call) if call.expired else None) from exc
            with response:
                content, cut_short = _read_capped(response, self._max_bytes, call)
        return _Reply(response.status_code, response.headers, content, cut_short)

    def _create_error(self, failed: _CallFailed) -> RetryLater | Unknown:
        if _never_connected(failed.cause):
            return RetryLater(None, f"no connection to the platform: {failed.message}", None)
        return Unknown(None, f"the request may have reached the platform: {failed.message}")

    def _finished(self, endpoint: str, kind: str, started: float) -> None:
        seconds = time.monotonic() - started
        log.debug("platform %s: %s in %.3fs", endpoint, kind, seconds)
        if self._observe is None:
            return
        try:
            self._observe(endpoint, kind, seconds)
        except Exception:
            # A metrics bug must not lose the outcome of a POST that cannot be repeated.
            log.exception("the platform latency observer failed")


def classify_create_answer(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    token: str = "",
    cut_short: str | None = None,
) -> CreateOutcome:
    """Settle an HTTP answer to ``POST /api/campaigns`` as guarantee 4 of the contract says.

    ``cut_short`` says why the body was not read whole (too large, too slow, broken off): a
    2xx is then unknown; any other status still says what it says.
    """
    if 200 <= status < 300:
        return _created_or_unknown(status, content, cut_short)
    message = platform_message(status, content, token=token)
    if cut_short:
        message = f"{message} ({cut_short})"[:MESSAGE_LIMIT]
    if status in (429, 503):
        return RetryLater(status, message, parse_retry_after(headers.get("Retry-After")))
    if status in (401, 403):
        return AuthFailed(status, message)
    if 400 <= status < 500:
        return NotCreated(status, message)
    return Unknown(status, message)


def classify_report_answer(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    token: str = "",
    cut_short: str | None = None,
) -> ReportOutcome:
    """Settle an HTTP answer to the analytics call: its data, an auth failure, or a failure."""
    if status in (401, 403):
        return AuthFailed(status, platform_message(status, content, token=token))
    if not 200 <= status < 300:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return ReportFailed(status, platform_message(status, content, token=token), retry_after)
    if cut_short:
        return ReportFailed(status, f"the platform answered {status}, but {cut_short}", None)
    try:
        data = decode(content, parse_constant=_no_value, parse_float=_finite_or_none)
    except ValueError as exc:
        return ReportFailed(status, _unreadable(status, exc), None)
    return ReportFetched(data)


def platform_message(status: int, content: bytes, *, token: str = "") -> str:
    """The platform's own words about an error, short and safe to log and to send to the CRM.

    From a JSON body: ``message`` (or ``error``, ``detail``) and a Laravel-style ``errors``
    map; otherwise the text of the body; at worst the status alone.
    """
    text = content.decode("utf-8", errors="replace").strip()
    try:
        payload = decode(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        text = _json_message(payload) or text
    text = " ".join(text.split()) or f"HTTP {status}"
    return _scrub(text, token)[:MESSAGE_LIMIT]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date), or None.

    A date in the past means "now" (0). A value that is neither form is ignored (None) rather
    than trusted: the backoff alone then decides.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def session_without_retries(pool_size: int, base_url: str) -> requests.Session:
    """A session that never retries, whose calls a deadline can cut, and that reads the
    environment (proxies, CA bundle) once.

    Left to itself, requests reads the proxy settings of the environment again at every call, a
    large part of a call's own cost; the platform's address does not change.
    """
    session = http_deadline.session(pool_size)
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.verify = (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    )
    session.trust_env = False
    return session


class _CallFailed(Exception):
    """No answer came: ``cause`` is what broke, ``message`` says it safely."""

    def __init__(self, cause: Exception, deadline_passed: str | None):
        super().__init__(deadline_passed or _describe(cause))
        self.cause = cause
        self.message = str(self)


def _read_capped(
    response: requests.Response, max_bytes: int, call: http_deadline.Call
) -> tuple[bytes, str | None]:
    """The body, and why it is not whole: over ``max_bytes``, past the deadline, broken off.

    A body given up on is not read to its end; closing the response then closes its
    connection rather than pooling it. Of one too large, only its start is kept.
    """
    too_large = f"its answer is larger than {max_bytes} bytes (PLATFORM_MAX_ANSWER_BYTES)"
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return b"", too_large
    content = bytearray()
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            content += chunk
            if len(content) > max_bytes:
                return bytes(content[:TOO_LARGE_KEPT]), too_large
    except Exception as exc:  # the answer broke off, or the deadline cut it
        if call.expired:
            return bytes(content), _deadline_passed(call)
        return bytes(content), f"its answer broke off: {_describe(exc)}"
    return bytes(content), None


def _deadline_passed(call: http_deadline.Call) -> str:
    return f"no whole answer within {call.seconds:g} s (HTTP_CALL_DEADLINE_SECONDS)"


def _created_or_unknown(status: int, content: bytes, cut_short: str | None) -> Created | Unknown:
    if cut_short:
        return Unknown(status, f"the platform answered {status}, but {cut_short}")
    try:
        data = decode(content)
    except ValueError as exc:
        return Unknown(status, _unreadable(status, exc))
    campaign_id = read_campaign_id(data)
    if campaign_id is not None:
        return Created(campaign_id)
    shown = shown_campaign_id(data)
    if shown is None:
        return Unknown(status, f"the platform answered {status} without a campaign id")
    return Unknown(
        status,
        f"the platform answered {status} with campaign id {shown}, which is not a positive "
        "64-bit integer: callbridge cannot hold it",
        shown_campaign_id=shown,
    )


def _unreadable(status: int, exc: ValueError) -> str:
    message = f"the platform answered {status} with a body callbridge cannot read: {exc}"
    return message[:MESSAGE_LIMIT]


def _no_value(constant: str) -> None:
    """``NaN`` and ``Infinity`` are not JSON: passed on, they would make the CRM's report
    events unreadable. A platform writing one has no value there."""
    return None


def _finite_or_none(literal: str) -> float | None:
    """A number too large for a float (``1e999``) would be written back as ``Infinity``: it
    has no value either."""
    number = float(literal)
    return number if math.isfinite(number) else None


def _never_connected(exc: Exception) -> bool:
    """True only when the request could not be prepared, or urllib3 failed to open the
    connection: no byte of the body was sent."""
    if isinstance(exc, requests.ConnectTimeout | _NOT_SENT):
        return True
    wrapped = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(wrapped, MaxRetryError) and isinstance(
        wrapped.reason, NewConnectionError | ConnectTimeoutError
    )


def _describe(exc: Exception) -> str:
    """The innermost cause of a transport error, named; never the request itself, nor a header
    (an invalid one is quoted in its error)."""
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return "InvalidHeader: the auth header cannot be sent (IS74_AUTH_HEADER, IS74_API_TOKEN)"
    cause: BaseException = exc
    for _ in range(_MAX_CAUSE_DEPTH):
        inner = cause.args[0] if cause.args else None
        if isinstance(cause, MaxRetryError) and cause.reason is not None:
            inner = cause.reason
        elif len(cause.args) > 1 and isinstance(cause.args[1], BaseException):
            inner = cause.args[1]  # urllib3's ProtocolError("Connection aborted.", cause)
        if not isinstance(inner, BaseException):
            break
        cause = inner
    return f"{type(cause).__name__}: {cause}"[:MESSAGE_LIMIT]


def _json_message(payload: dict) -> str:
    said = next((payload[key] for key in ("message", "error", "detail") if payload.get(key)), None)
    if isinstance(said, dict):
        said = said.get("message") or json.dumps(said, ensure_ascii=False)
    parts = [str(said)] if said else []
    errors = payload.get("errors")
    if isinstance(errors, dict) and errors:
        shown = itertools.islice(errors.items(), ERRORS_SHOWN)
        listed = "; ".join(f"{path}: {_listed(reasons)}" for path, reasons in shown)
        more = f" (and {len(errors) - ERRORS_SHOWN} more)" if len(errors) > ERRORS_SHOWN else ""
        parts.append(listed + more)
    return " — ".join(parts)


def _listed(reasons: object) -> str:
    return ", ".join(map(str, reasons)) if isinstance(reasons, list) else str(reasons)


def _scrub(text: str, token: str) -> str:
    """Without the token, also as a repr or JSON would escape it, and without phones."""
    if token:
        for written in {token, repr(token)[1:-1], json.dumps(token)[1:-1]}:
            text = text.replace(written, "[token]")
    return _PHONE_LIKE.sub("[phone]", text)
