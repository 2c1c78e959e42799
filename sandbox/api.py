"""What the sandbox platform answers, apart from HTTP: auth, validation, campaigns, faults.

Thread-safe: one lock guards the stored campaigns, the fault queues, the options and the log
of requests, so the HTTP server may answer many calls at once. Each call is settled into an
``Answer`` (status, body, how late, or to hang up instead); the server only carries it out.
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sandbox import faults as fault_specs
from sandbox.faults import Fault
from sandbox.reports import PHONE_FORMATS, ReportOptions, report_body
from sandbox.validation import ROOT, Errors, campaign_errors, report_errors

FIRST_CAMPAIGN_ID = 12345
# The zone the platform's project is set to: it reads a campaign's date and times in it.
PLATFORM_ZONE = "Asia/Yekaterinburg"
# The log of received requests keeps the latest ones only, so a long benchmark stays bounded.
RECEIVED_KEPT = 100_000
# A dripped answer starts with this many spaces (JSON allows them), so that it lasts.
DRIP_PADDING = 1024
_JSON_HEADERS = (("Content-Type", "application/json"),)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Answer:
    """How to answer one HTTP request, and how late; status None: hang up without answering.

    ``campaign_id``: the campaign the call concerned (created, or reported on), for the log.
    ``drip``: send the body one byte every that many seconds; ``endless``: send a chunked body
    for as long as the client reads it, instead of ``body``.
    """

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    campaign_id: int | None = None
    drip: float = 0.0
    endless: bool = False


@dataclass(frozen=True)
class StoredCampaign:
    """A campaign the sandbox created: what it received, the id it gave, and when."""

    id: int
    body: dict
    created_at: datetime

    @property
    def project_id(self) -> int:
        return self.body["campaign"]["project_id"]

    @property
    def phones(self) -> list[str]:
        return [entry["phone"] for entry in self.body["phones"]]

    @property
    def window_utc(self) -> tuple[datetime, datetime]:
        """When the platform would call: the schedule read in ``PLATFORM_ZONE``, in UTC."""
        schedule = self.body["campaign"]["schedule"]
        day, zone = date.fromisoformat(schedule["date"]), ZoneInfo(PLATFORM_ZONE)
        return tuple(
            datetime.combine(day, time.fromisoformat(schedule[key]), tzinfo=zone).astimezone(UTC)
            for key in ("start_time", "end_time")
        )

    def as_json(self) -> dict:
        start, end = self.window_utc
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "window": {"start": start.isoformat(), "end": end.isoformat(), "zone": PLATFORM_ZONE},
            "body": self.body,
        }


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the sandbox received it; ``status`` None when it hung up instead;
    ``campaign_id`` the campaign it created or reported on, if any.

    ``received_at`` is when it arrived (seconds since the epoch, before its body was read), so
    that a test can tell how long a client waited between two calls.
    """

    method: str
    path: str
    status: int | None
    received_at: float
    campaign_id: int | None = None


def json_answer(status: int, payload: object) -> Answer:
    return Answer(status, _ENCODER.encode(payload).encode(), _JSON_HEADERS)


def load_json(raw: bytes) -> object:
    """Decode a request body as strictly as a PHP platform would (no NaN, no Infinity)."""
    return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)


class PlatformApi:
    """The platform's two endpoints plus the ``/_sandbox/`` controls, over shared state."""

    def __init__(
        self,
        *,
        token: str,
        auth_header: str = "Authorization",
        first_campaign_id: int = FIRST_CAMPAIGN_ID,
        **options: Any,
    ):
        if not token:
            raise ValueError("the sandbox needs a token")
        self._token = token.encode()
        self._auth_header = auth_header
        self._lock = threading.Lock()
        self._ids = itertools.count(first_campaign_id)
        self._campaigns: dict[int, StoredCampaign] = {}
        self._received: deque[ReceivedRequest] = deque(maxlen=RECEIVED_KEPT)
        self._initial = _parse_options(options, base=_Options())
        self._options = self._initial
        self._create_faults = deque(self._initial.create_faults)
        self._report_faults = deque(self._initial.report_faults)

    # --- the platform ---------------------------------------------------------------------

    def create_campaign(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        """A pending fault answers first, as a proxy in front of the platform would."""
        fault, latency = self._next_fault(create=True)
        if fault is not None and fault.kind in (fault_specs.STATUS, fault_specs.DROP):
            return _fault_answer(fault, latency)
        answer = self._create(headers, raw)
        if fault is not None and fault.kind == fault_specs.DROP_AFTER_CREATE:
            answer = Answer(None, campaign_id=answer.campaign_id)
        elif fault is not None and answer.status == 200:
            outline = {"campaign": {"id": answer.campaign_id}, "detail": None}
            answer = dataclasses.replace(
                _misshapen(answer, fault, outline), campaign_id=answer.campaign_id
            )
        return dataclasses.replace(answer, delay=latency + _slowness(fault))

    def report(self, project_id: int, headers: Mapping[str, str], raw: bytes) -> Answer:
        fault, latency = self._next_fault(create=False)
        if fault is not None and fault.kind in (fault_specs.STATUS, fault_specs.DROP):
            return _fault_answer(fault, latency)
        answer = self._report(project_id, headers, raw)
        if fault is not None and answer.status == 200:
            answer = _misshapen(answer, fault, {"columns": [], "data": None})
        return dataclasses.replace(answer, delay=latency + _slowness(fault))

    # --- controls and inspection ----------------------------------------------------------

    @property
    def campaigns(self) -> list[StoredCampaign]:
        with self._lock:
            return list(self._campaigns.values())

    @property
    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    def record(
        self,
        method: str,
        path: str,
        status: int | None,
        received_at: float,
        campaign_id: int | None = None,
    ) -> None:
        with self._lock:
            self._received.append(ReceivedRequest(method, path, status, received_at, campaign_id))

    def campaign(self, campaign_id: int) -> StoredCampaign | None:
        with self._lock:
            return self._campaigns.get(campaign_id)

    def set_token(self, token: str) -> None:
        """Accept another token from now on: a platform re-issuing or re-enabling a token."""
        if not token:
            raise ValueError("the sandbox needs a token")
        with self._lock:
            self._token = token.encode()

    def set_faults(self, **options: Any) -> None:
        """Change options at run time (ValueError on a bad one; then nothing changes).

        A fault list given here replaces the faults still pending for that endpoint.
        """
        with self._lock:
            self._options = _parse_options(options, base=self._options)
            if "create_faults" in options:
                self._create_faults = deque(self._options.create_faults)
            if "report_faults" in options:
                self._report_faults = deque(self._options.report_faults)

    def reset(self) -> None:
        """Forget campaigns, pending faults and received requests; restore the start options.

        Campaign ids keep increasing, as the real platform's do, so an id handed out before the
        reset never names a different campaign after it.
        """
        with self._lock:
            self._campaigns.clear()
            self._received.clear()
            self._options = self._initial
            self._create_faults = deque(self._initial.create_faults)
            self._report_faults = deque(self._initial.report_faults)

    def options_json(self) -> dict:
        """The options in force, with the faults still pending (as the control API shows them)."""
        with self._lock:
            report = self._options.report
            return {
                "latency": self._options.latency,
                "create_faults": [str(fault) for fault in self._create_faults],
                "report_faults": [str(fault) for fault in self._report_faults],
                "report_missing_every": report.missing_every,
                "report_rows_per_phone": report.rows_per_phone,
                "report_phone_format": report.phone_format,
                "report_phone_field": report.phone_field,
            }

    # --- inside ---------------------------------------------------------------------------

    def _next_fault(self, *, create: bool) -> tuple[Fault | None, float]:
        with self._lock:
            queue = self._create_faults if create else self._report_faults
            return (queue.popleft() if queue else None), self._options.latency

    def _create(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        body, refusal = self._read(headers, raw, campaign_errors)
        if refusal is not None:
            return refusal
        with self._lock:
            campaign = StoredCampaign(next(self._ids), body, datetime.now(UTC))
            self._campaigns[campaign.id] = campaign
        answer = json_answer(200, {"campaign": {"id": campaign.id}})
        return dataclasses.replace(answer, campaign_id=campaign.id)

    def _report(self, project_id: int, headers: Mapping[str, str], raw: bytes) -> Answer:
        body, refusal = self._read(headers, raw, report_errors)
        if refusal is not None:
            return refusal
        campaign_id = body["analytics_filter"]["outgoing_campaign_id"]
        with self._lock:
            campaign = self._campaigns.get(campaign_id)
            options = self._options.report
        if campaign is None or campaign.project_id != project_id:
            answer = json_answer(404, {"message": f"campaign {campaign_id} not found in project"})
            return dataclasses.replace(answer, campaign_id=campaign_id)
        return Answer(200, report_body(campaign.body, options), _JSON_HEADERS, 0.0, campaign_id)

    def _read(
        self, headers: Mapping[str, str], raw: bytes, errors_of: Callable[[object], Errors]
    ) -> tuple[Any, Answer | None]:
        """The decoded body, or the answer refusing it: 401, 415, 400 or 422, in that order."""
        if not self._authorised(headers.get(self._auth_header)):
            return None, json_answer(401, {"message": "Unauthenticated."})
        if headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return None, json_answer(415, {"message": "Content-Type must be application/json"})
        try:
            body = load_json(raw)
        except ValueError:
            return None, json_answer(400, {"message": "the body is not valid JSON"})
        errors = errors_of(body)
        if errors:
            return None, json_answer(422, {"message": _summary(errors), "errors": errors})
        return body, None

    def _authorised(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._token
        )


@dataclass(frozen=True)
class _Options:
    """The options as configured; the fault lists here are replayed by ``reset``."""

    latency: float = 0.0
    create_faults: tuple[Fault, ...] = ()
    report_faults: tuple[Fault, ...] = ()
    report: ReportOptions = dataclasses.field(default_factory=ReportOptions)


def _parse_options(options: Mapping[str, Any], *, base: _Options) -> _Options:
    unknown = sorted(options.keys() - _OPTION_PARSERS.keys())
    if unknown:
        raise ValueError(f"unknown sandbox option(s): {', '.join(unknown)}")
    parsed = {name: _OPTION_PARSERS[name](value) for name, value in options.items()}
    report = {name: parsed.pop(name) for name in _REPORT_OPTIONS.keys() & parsed.keys()}
    report_options = {_REPORT_OPTIONS[name]: value for name, value in report.items()}
    return dataclasses.replace(
        base, report=dataclasses.replace(base.report, **report_options), **parsed
    )


def _number_at_least(minimum: float, *, integer: bool) -> Callable[[object], float]:
    def parse(value: object) -> float:
        kinds = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
            kind = "an integer" if integer else "a number"
            raise ValueError(f"must be {kind} >= {minimum}")
        return value

    return parse


def _phone_format(value: object) -> str:
    if value not in PHONE_FORMATS:
        raise ValueError(f"report_phone_format must be one of {', '.join(PHONE_FORMATS)}")
    return value


def _field_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("report_phone_field must be a non-empty string")
    return value


# Option name -> ReportOptions field.
_REPORT_OPTIONS = {
    "report_missing_every": "missing_every",
    "report_rows_per_phone": "rows_per_phone",
    "report_phone_format": "phone_format",
    "report_phone_field": "phone_field",
}
_OPTION_PARSERS: dict[str, Callable[[Any], Any]] = {
    "latency": _number_at_least(0, integer=False),
    "create_faults": lambda specs: fault_specs.parse_faults(specs, for_create=True),
    "report_faults": lambda specs: fault_specs.parse_faults(specs, for_create=False),
    "report_missing_every": _number_at_least(0, integer=True),
    "report_rows_per_phone": _number_at_least(1, integer=True),
    "report_phone_format": _phone_format,
    "report_phone_field": _field_name,
}


def _slowness(fault: Fault | None) -> float:
    return fault.seconds if fault is not None and fault.kind == fault_specs.SLOW else 0.0


def _misshapen(answer: Answer, fault: Fault, outline: dict) -> Answer:
    """The 200 ``answer`` as a fault spoils it. A deep fault nests where ``outline``, the
    answer's shape, holds None (after a campaign's id, so the id stays readable)."""
    if fault.kind == fault_specs.ENDLESS:
        return dataclasses.replace(answer, body=b"", endless=True)
    if fault.kind == fault_specs.DRIP:
        padded = b" " * DRIP_PADDING + answer.body
        return dataclasses.replace(answer, body=padded, drip=fault.seconds)
    if fault.kind == fault_specs.CAMPAIGN_ID:
        return json_answer(200, {"campaign": {"id": fault.campaign_id}})
    if fault.kind == fault_specs.DEEP:
        nesting = b"[" * fault.depth + b"]" * fault.depth
        body = _ENCODER.encode(outline).encode().replace(b"null", nesting, 1)
        return dataclasses.replace(answer, body=body)
    if fault.kind == fault_specs.NO_ID:
        return json_answer(200, {"campaign": {}})
    return answer


def _fault_answer(fault: Fault, latency: float) -> Answer:
    if fault.kind == fault_specs.DROP:
        return Answer(None, delay=latency)
    headers = (("Retry-After", fault.retry_after),) if fault.retry_after else ()
    answer = json_answer(fault.status, {"message": f"injected fault: HTTP {fault.status}"})
    return dataclasses.replace(answer, headers=answer.headers + headers, delay=latency)


def _summary(errors: Errors) -> str:
    path, messages = next(iter(errors.items()))
    where = "the body" if path == ROOT else path
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"The given data was invalid: {where} {messages[0]}{more}."


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
