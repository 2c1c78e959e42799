"""The sandbox platform over real HTTP: strict to the documentation, faults, controls, the CLI."""

from __future__ import annotations

import datetime
import functools
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox import SandboxServer
from sandbox.api import FIRST_CAMPAIGN_ID
from sandbox.faults import parse_fault
from sandbox.reports import CALL_STATUSES, format_phone
from tests.plugins.sandbox import documented_campaign_body, documented_report_query

ROOT = Path(__file__).resolve().parents[1]


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
PHONES = ("+79123456789", "+79123456790", "+79123456791", "+79123456792")


def changed(body: dict, dotted: str, value: object) -> dict:
    """A deep copy of ``body`` with the field at ``dotted`` set to ``value`` (or deleted)."""
    body = json.loads(json.dumps(body))
    *parents, last = dotted.split(".")
    target = body
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    index = int(last) if isinstance(target, list) else last
    if value is DELETE:
        del target[index]
    else:
        target[index] = value
    return body


class Client:
    """Plain HTTP to the sandbox, independent of the worker's platform client."""

    def __init__(self, sandbox: SandboxServer, token: str) -> None:
        self.url = sandbox.url
        self.session = requests.Session()
        self.auth = {"Authorization": f"Bearer {token}"}

    def create(self, body: object, **headers: str) -> requests.Response:
        return self.post("/api/campaigns", body, **headers)

    def report(self, campaign_id: int) -> dict:
        response = self.post("/api/analytics/1/report", documented_report_query(campaign_id))
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: object, **headers: str) -> requests.Response:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {**self.auth, "Content-Type": "application/json", **headers}
        return self.session.post(self.url + path, data=data, headers=sent, timeout=5)

    def control(self, method: str, name: str, body: object = None) -> requests.Response:
        return self.session.request(method, f"{self.url}/_sandbox/{name}", json=body, timeout=5)


@pytest.fixture
def client(sandbox: SandboxServer, sandbox_token: str) -> Client:
    return Client(sandbox, sandbox_token)


def created_id(response: requests.Response) -> int:
    assert response.status_code == 200, response.text
    return response.json()["campaign"]["id"]


# --- campaign bodies --------------------------------------------------------------------------

CREATE_RULES = [
    # (field changed, new value or DELETE, path of the reason, words in the reason)
    ("extra", 1, "extra", "unknown field"),
    ("campaign", DELETE, "campaign", "required"),
    ("campaign", [], "campaign", "must be an object"),
    ("campaign.scenario_id", 951, "campaign.scenario_id", "unknown field"),
    ("campaign.project_id", DELETE, "campaign.project_id", "required"),
    ("campaign.project_id", "1", "campaign.project_id", "must be an integer"),
    ("campaign.project_id", True, "campaign.project_id", "must be an integer"),
    ("campaign.start_block_id", 10.0, "campaign.start_block_id", "must be an integer"),
    ("campaign.start_block_id", DELETE, "campaign.start_block_id", "required"),
    ("campaign.phone_id", DELETE, "campaign.phone_id", "required"),
    ("campaign.phone_id", None, "campaign.phone_id", "must be an integer"),
    ("campaign.name", 123, "campaign.name", "must be a string"),
    ("campaign.description", None, "campaign.description", "must be a string"),
    ("campaign.state", DELETE, "campaign.state", "required"),
    ("campaign.state", "Created", "campaign.state", "must be 'Создано'"),
    ("campaign.schedule", DELETE, "campaign.schedule", "required"),
    ("campaign.schedule.timezone", "Asia/Yekaterinburg", "campaign.schedule.timezone", "unknown"),
    ("campaign.schedule.date", DELETE, "campaign.schedule.date", "required"),
    ("campaign.schedule.date", "01.12.2026", "campaign.schedule.date", "YYYY-MM-DD"),
    ("campaign.schedule.date", "2026-02-30", "campaign.schedule.date", "YYYY-MM-DD"),
    ("campaign.schedule.start_time", "9:00", "campaign.schedule.start_time", "HH:MM"),
    ("campaign.schedule.end_time", "24:00", "campaign.schedule.end_time", "HH:MM"),
    ("campaign.schedule.end_time", 1700, "campaign.schedule.end_time", "must be a string"),
    ("campaign.schedule.periods", DELETE, "campaign.schedule.periods", "required"),
    ("campaign.schedule.periods.id", 2, "campaign.schedule.periods.id", "must be 1"),
    ("campaign.schedule.periods.id", True, "campaign.schedule.periods.id", "must be 1"),
    ("campaign.schedule.periods.title", "Once", "campaign.schedule.periods.title", "Однократно"),
    ("campaign.schedule.periods.every", 1, "campaign.schedule.periods.every", "unknown field"),
    ("campaign.schedule.attempts", 3, "campaign.schedule.attempts", "must be an object"),
    ("campaign.schedule.attempts.id", 6, "campaign.schedule.attempts.id", "from 1 to 5"),
    ("campaign.schedule.attempts.id", 0, "campaign.schedule.attempts.id", "from 1 to 5"),
    ("campaign.schedule.attempts.id", "3", "campaign.schedule.attempts.id", "from 1 to 5"),
    ("campaign.schedule.attempts.title", "2", "campaign.schedule.attempts.title", "'3'"),
    ("campaign.schedule.attempts.title", 3, "campaign.schedule.attempts.title", "a string"),
    ("campaign.schedule.interval", 5, "campaign.schedule.interval", "must be a string"),
    ("campaign.schedule.interval", "5m", "campaign.schedule.interval", "digits"),
    ("campaign.schedule.interval", DELETE, "campaign.schedule.interval", "required"),
    ("phones", DELETE, "phones", "required"),
    ("phones", [], "phones", "must not be empty"),
    ("phones", {"phone": "+79123456789"}, "phones", "must be a list"),
    ("phones.0", "+79123456789", "phones.0", "must be an object"),
    ("phones.0.phone", DELETE, "phones.0.phone", "required"),
    ("phones.0.phone", "89123456789", "phones.0.phone", "E.164"),
    ("phones.0.phone", "+7 912 345-67-89", "phones.0.phone", "E.164"),
    ("phones.0.phone", "+449123456789", "phones.0.phone", "E.164"),
    ("phones.0.phone", 79123456789, "phones.0.phone", "must be a string"),
    ("phones.0.external_id", "lead-42", "phones.0.external_id", "unknown field"),
    ("phones.0.add_data", ["x"], "phones.0.add_data", "must be an object"),
    ("phones.0.add_data.name", {"first": "Иван"}, "phones.0.add_data.name", "string, number"),
    ("phones.0.add_data.name", None, "phones.0.add_data.name", "string, number"),
]


@pytest.mark.parametrize(
    ("field", "value", "path", "reason"),
    CREATE_RULES,
    ids=[f"{field}={value!r}"[:60] for field, value, *_ in CREATE_RULES],
)
def test_create_refuses_each_broken_rule_with_422(
    client: Client, sandbox: SandboxServer, field: str, value: object, path: str, reason: str
) -> None:
    response = client.create(changed(documented_campaign_body(), field, value))

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == [path]
    assert reason in errors[path][0]
    assert sandbox.campaigns == []


def test_create_refuses_a_body_that_is_not_an_object(client: Client) -> None:
    response = client.create([documented_campaign_body()])

    assert response.status_code == 422
    assert response.json()["errors"] == {"_schema": ["must be an object"]}


def test_create_lists_every_reason_at_once(client: Client) -> None:
    body = changed(documented_campaign_body(*PHONES), "campaign.schedule.interval", 5)
    body = changed(body, "phones.2.phone", "8 912 345-67-89")
    body = changed(body, "campaign.state", DELETE)

    answer = client.create(body).json()

    assert set(answer["errors"]) == {
        "campaign.state",
        "campaign.schedule.interval",
        "phones.2.phone",
    }
    assert answer["message"].startswith("The given data was invalid")


def test_create_accepts_optional_fields_left_out(client: Client) -> None:
    body = changed(documented_campaign_body(), "campaign.name", DELETE)
    body = changed(body, "campaign.description", DELETE)
    body = changed(body, "phones.0.add_data", DELETE)

    assert client.create(body).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b'{"campaign": NaN}', "{}".encode("utf-16"), b""],
    ids=["broken", "nan", "not-utf8", "empty"],
)
def test_create_answers_400_to_a_body_that_is_not_json(client: Client, raw: bytes) -> None:
    assert client.create(raw).status_code == 400


def test_create_answers_415_without_a_json_content_type(client: Client) -> None:
    response = client.create(documented_campaign_body(), **{"Content-Type": "text/plain"})

    assert response.status_code == 415


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Token {token}", "{token}", "Bearer "],
    ids=["missing", "wrong-token", "wrong-scheme", "no-scheme", "empty"],
)
def test_create_answers_401_without_the_token(
    sandbox: SandboxServer, sandbox_token: str, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=sandbox_token)

    response = requests.post(
        sandbox.url + "/api/campaigns",
        data=json.dumps(documented_campaign_body()),
        headers=headers,
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}
    assert sandbox.campaigns == []


def test_create_keeps_the_campaign_and_gives_increasing_ids(
    make_sandbox, sandbox_token: str
) -> None:
    sandbox = make_sandbox(first_campaign_id=500)
    client = Client(sandbox, sandbox_token)
    body = documented_campaign_body(*PHONES)

    ids = [created_id(client.create(body)) for _ in range(3)]

    assert ids == [500, 501, 502]
    stored = sandbox.campaigns
    assert [campaign.id for campaign in stored] == ids
    assert stored[0].body == body
    assert stored[0].phones == list(PHONES)
    assert stored[0].created_at.tzinfo is not None


def test_each_campaign_is_recorded_with_when_the_platform_would_call(
    sandbox: SandboxServer, sandbox_token: str
) -> None:
    """The document's 2026-12-01 09:00-17:00, read in the project's zone (Yekaterinburg)."""
    Client(sandbox, sandbox_token).create(documented_campaign_body(*PHONES))
    (campaign,) = sandbox.campaigns
    assert campaign.window_utc == (
        datetime.datetime(2026, 12, 1, 4, 0, tzinfo=datetime.UTC),
        datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC),
    )
    (listed,) = requests.get(f"{sandbox.url}/_sandbox/campaigns", timeout=5).json()
    assert listed["window"] == {
        "start": "2026-12-01T04:00:00+00:00",
        "end": "2026-12-01T12:00:00+00:00",
        "zone": "Asia/Yekaterinburg",
    }


def test_the_connection_is_kept_alive_between_calls(sandbox: SandboxServer, sandbox_token) -> None:
    host, port = sandbox.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    headers = {"Authorization": f"Bearer {sandbox_token}", "Content-Type": "application/json"}
    body = json.dumps(documented_campaign_body())

    sockets = []
    for _ in range(2):
        connection.request("POST", "/api/campaigns", body=body, headers=headers)
        assert connection.getresponse().read()
        sockets.append(connection.sock)
    connection.close()

    assert sockets[0] is not None
    assert sockets[0] is sockets[1]
    assert len(sandbox.campaigns) == 2


# --- reports ----------------------------------------------------------------------------------

REPORT_RULES = [
    ("analytics_filter", DELETE, "analytics_filter", "required"),
    ("analytics_filter.scenario_id", DELETE, "analytics_filter.scenario_id", "required"),
    ("analytics_filter.scenario_id", "951", "analytics_filter.scenario_id", "an integer"),
    ("analytics_filter.start_block_id", DELETE, "analytics_filter.start_block_id", "required"),
    ("analytics_filter.outgoing_campaign_id", True, "analytics_filter.outgoing_campaign_id", "an"),
    ("analytics_filter.date_start", DELETE, "analytics_filter.date_start", "required"),
    ("analytics_filter.date_start", "2026-12-01", "analytics_filter.date_start", "ending in Z"),
    (
        "analytics_filter.date_start",
        "2026-12-01T09:00:00+05:00",
        "analytics_filter.date_start",
        "ending in Z",
    ),
    ("analytics_filter.date_end", "2026-13-01T00:00:00Z", "analytics_filter.date_end", "in Z"),
    ("analytics_filter.date_end", 1764547200, "analytics_filter.date_end", "must be a string"),
    (
        "analytics_filter.date_end",
        "2026-12-01T03:59:59.999Z",
        "analytics_filter.date_end",
        "must not be before date_start",
    ),
    ("analytics_filter.timezone", "UTC", "analytics_filter.timezone", "unknown field"),
    ("columns", {}, "columns", "must be a list"),
    ("columns.0", "phone_number", "columns.0", "must be an object"),
    ("columns.0.id", "1", "columns.0.id", "must be an integer"),
    ("columns.0.name", 1, "columns.0.name", "must be a string"),
    ("columns.0.data_type", "string", "columns.0.data_type", "one of: text, number"),
    ("columns.0.filter_type", "like", "columns.0.filter_type", "one of: equal"),
    ("columns.0.filter_value", 79999999999, "columns.0.filter_value", "must be a string"),
    ("columns.0.sorting", "up", "columns.0.sorting", "one of: asc, desc"),
    ("columns.0.width", 100, "columns.0.width", "unknown field"),
    ("limit", 100, "limit", "unknown field"),
]


@pytest.mark.parametrize(
    ("field", "value", "path", "reason"),
    REPORT_RULES,
    ids=[f"{field}={value!r}"[:60] for field, value, *_ in REPORT_RULES],
)
def test_report_refuses_each_broken_rule_with_422(
    client: Client, field: str, value: object, path: str, reason: str
) -> None:
    campaign_id = created_id(client.create(documented_campaign_body()))
    query = changed(documented_report_query(campaign_id), field, value)

    response = client.post("/api/analytics/1/report", query)

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert list(errors) == [path]
    assert reason in errors[path][0]


def test_report_accepts_a_query_without_columns(client: Client) -> None:
    campaign_id = created_id(client.create(documented_campaign_body()))
    query = changed(documented_report_query(campaign_id), "columns", DELETE)

    assert client.post("/api/analytics/1/report", query).status_code == 200


@pytest.mark.parametrize(
    ("path", "campaign_id"),
    [("/api/analytics/1/report", 99), ("/api/analytics/2/report", None)],
    ids=["unknown-campaign", "campaign-of-another-project"],
)
def test_report_answers_404_for_a_campaign_it_does_not_know(
    client: Client, path: str, campaign_id: int | None
) -> None:
    created = created_id(client.create(documented_campaign_body()))

    response = client.post(path, documented_report_query(campaign_id or created))

    assert response.status_code == 404


def test_report_needs_the_token(client: Client) -> None:
    campaign_id = created_id(client.create(documented_campaign_body()))

    response = client.post(
        "/api/analytics/1/report",
        documented_report_query(campaign_id),
        Authorization="Bearer nope",
    )

    assert response.status_code == 401


def test_report_has_one_plausible_row_per_phone(client: Client) -> None:
    campaign_id = created_id(client.create(documented_campaign_body(*PHONES)))

    report = client.report(campaign_id)

    rows = report["data"]
    assert [row["phone_number"] for row in rows] == [phone[1:] for phone in PHONES]
    assert {row["call_status"] for row in rows} <= set(CALL_STATUSES)
    assert len({row["call_status"] for row in rows}) > 1
    for row in rows:
        answered = row["call_status"] == "answered"
        assert (row["duration"] > 0) == answered
        assert bool(row["dialog"]) == answered
        assert isinstance(row["goal"], bool)
        assert row["started_at"].startswith("2026-12-01T04:")
        assert row["started_at"].endswith("Z")
    assert report["count"] == len(PHONES)
    assert report["total_duration"] == sum(row["duration"] for row in rows)
    assert report["avg_duration"] == round(report["total_duration"] / len(PHONES))
    assert report["columns"][0] == {
        "field": "phone_number",
        "display_name": "Phone Number",
        "type": "text",
    }
    assert client.report(campaign_id) == report  # deterministic


@pytest.mark.parametrize(
    ("phone_format", "expected"),
    [("digits", "79123456789"), ("e164", "+79123456789"), ("national", "8 (912) 345-67-89")],
)
def test_format_phone(phone_format: str, expected: str) -> None:
    assert format_phone("+79123456789", phone_format) == expected


@pytest.mark.parametrize(
    ("options", "phones_in_rows"),
    [
        ({"report_missing_every": 2}, [PHONES[0], PHONES[2]]),
        ({"report_missing_every": 3}, [PHONES[0], PHONES[1], PHONES[3]]),
        ({"report_rows_per_phone": 2}, [phone for phone in PHONES for _ in (1, 2)]),
    ],
    ids=["missing-every-2", "missing-every-3", "two-rows-per-phone"],
)
def test_report_options_shape_the_rows(
    make_sandbox, sandbox_token: str, options: dict, phones_in_rows: list[str]
) -> None:
    client = Client(make_sandbox(report_phone_format="e164", **options), sandbox_token)
    campaign_id = created_id(client.create(documented_campaign_body(*PHONES)))

    rows = client.report(campaign_id)["data"]

    assert [row["phone_number"] for row in rows] == phones_in_rows
    assert len({(row["phone_number"], row["started_at"]) for row in rows}) == len(rows)


def test_report_phone_field_and_format_are_options(make_sandbox, sandbox_token: str) -> None:
    sandbox = make_sandbox(report_phone_field="phone", report_phone_format="national")
    client = Client(sandbox, sandbox_token)
    campaign_id = created_id(client.create(documented_campaign_body("+79123456789")))

    report = client.report(campaign_id)

    assert report["data"][0]["phone"] == "8 (912) 345-67-89"
    assert "phone_number" not in report["data"][0]
    assert report["columns"][0]["field"] == "phone"


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "retry_after"),
    [("503", None), ("503:retry-after=2", "2"), (429, None), ("500", None), ("401", None)],
)
def test_a_status_fault_answers_it_once_and_creates_nothing(
    make_sandbox, sandbox_token: str, spec: str | int, retry_after: str | None
) -> None:
    sandbox = make_sandbox(create_faults=[spec])
    client = Client(sandbox, sandbox_token)

    faulty = client.create(documented_campaign_body())
    healthy = client.create(documented_campaign_body())

    assert faulty.status_code == int(str(spec)[:3])
    assert faulty.headers.get("Retry-After") == retry_after
    assert healthy.status_code == 200
    assert len(sandbox.campaigns) == 1
    assert [received.status for received in sandbox.requests] == [faulty.status_code, 200]


@pytest.mark.parametrize(("spec", "created"), [("drop", 0), ("drop-after-create", 1)])
def test_a_drop_fault_hangs_up_without_answering(
    make_sandbox, sandbox_token: str, spec: str, created: int
) -> None:
    sandbox = make_sandbox(create_faults=[spec])
    client = Client(sandbox, sandbox_token)

    with pytest.raises(requests.ConnectionError):
        client.create(documented_campaign_body())

    assert len(sandbox.campaigns) == created
    assert [received.status for received in sandbox.requests] == [None]
    assert client.create(documented_campaign_body()).status_code == 200


def test_a_no_id_fault_creates_but_answers_without_the_id(make_sandbox, sandbox_token) -> None:
    sandbox = make_sandbox(create_faults=["no-id"])

    response = Client(sandbox, sandbox_token).create(documented_campaign_body())

    assert response.status_code == 200
    assert response.json() == {"campaign": {}}
    assert len(sandbox.campaigns) == 1


def test_a_slow_fault_and_latency_delay_the_answer(make_sandbox, sandbox_token: str) -> None:
    sandbox = make_sandbox(create_faults=["slow:0.3"], latency=0.1)
    client = Client(sandbox, sandbox_token)

    durations = []
    for _ in range(2):
        started = time.monotonic()
        assert client.create(documented_campaign_body()).status_code == 200
        durations.append(time.monotonic() - started)

    assert durations[0] >= 0.4
    assert 0.1 <= durations[1] < 0.4


@pytest.mark.parametrize("spec", ["500", "503:retry-after=7", "drop"])
def test_report_faults_fail_the_next_report_once(
    make_sandbox, sandbox_token: str, spec: str
) -> None:
    sandbox = make_sandbox(report_faults=[spec])
    client = Client(sandbox, sandbox_token)
    campaign_id = created_id(client.create(documented_campaign_body()))
    query = documented_report_query(campaign_id)

    try:
        status = client.post("/api/analytics/1/report", query).status_code
    except requests.ConnectionError:
        status = None

    assert status == parse_fault(spec, for_create=False).status
    assert client.post("/api/analytics/1/report", query).status_code == 200


def streamed(response: requests.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed answer, then hang up."""
    received = b""
    for chunk in response.iter_content(64 * 1024):
        received += chunk
        if len(received) >= limit:
            break
    response.close()
    return received


def stream(client: Client, path: str, body: object) -> requests.Response:
    sent = {**client.auth, "Content-Type": "application/json"}
    return client.session.post(
        client.url + path, data=json.dumps(body), headers=sent, stream=True, timeout=5
    )


@pytest.mark.parametrize("create", [True, False], ids=["create", "report"])
def test_an_endless_fault_streams_for_as_long_as_the_client_reads(
    make_sandbox, sandbox_token: str, create: bool
) -> None:
    sandbox = make_sandbox(**{"create_faults" if create else "report_faults": ["endless"]})
    client = Client(sandbox, sandbox_token)
    campaign_id = None if create else created_id(client.create(documented_campaign_body()))
    path, body = (
        ("/api/campaigns", documented_campaign_body())
        if create
        else ("/api/analytics/1/report", documented_report_query(campaign_id))
    )

    response = stream(client, path, body)
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert streamed(response, 8 * 1024 * 1024).startswith(b"[0,0,0,")
    assert len(sandbox.campaigns) == 1, "the campaign is created before the answer runs away"
    assert client.create(documented_campaign_body()).status_code == 200


def test_a_drip_fault_sends_the_answer_one_byte_at_a_time(make_sandbox, sandbox_token) -> None:
    sandbox = make_sandbox(create_faults=["drip:0.05"])
    response = stream(Client(sandbox, sandbox_token), "/api/campaigns", documented_campaign_body())

    started = time.monotonic()
    first = next(response.raw.stream(1))
    second = next(response.raw.stream(1))
    elapsed = time.monotonic() - started

    assert (first, second) == (b" ", b" ")
    assert 0.05 <= elapsed < 1
    assert int(response.headers["Content-Length"]) > 1024
    response.close()
    assert len(sandbox.campaigns) == 1


@pytest.mark.parametrize(("spec", "depth"), [("deep", 100_000), ("deep:70", 70)])
def test_a_deep_fault_nests_json_that_deep(make_sandbox, sandbox_token, spec, depth) -> None:
    sandbox = make_sandbox(create_faults=[spec], report_faults=[spec])
    client = Client(sandbox, sandbox_token)

    created = client.create(documented_campaign_body())
    campaign_id = sandbox.campaigns[0].id
    report = client.post("/api/analytics/1/report", documented_report_query(campaign_id))

    nesting = b"[" * depth + b"]" * depth
    assert created.content == b'{"campaign":{"id":%d},"detail":%s}' % (campaign_id, nesting)
    assert report.content == b'{"columns":[],"data":%s}' % nesting


@pytest.mark.parametrize("campaign_id", [2**63, -1, 0, 10**30])
def test_an_id_fault_answers_that_id_for_the_campaign_it_created(
    make_sandbox, sandbox_token: str, campaign_id: int
) -> None:
    sandbox = make_sandbox(create_faults=[f"id:{campaign_id}"])

    response = Client(sandbox, sandbox_token).create(documented_campaign_body())

    assert response.content == b'{"campaign":{"id":%d}}' % campaign_id
    assert len(sandbox.campaigns) == 1


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"create_faults": ["teapot"]}, "unknown fault"),
        ({"create_faults": ["200"]}, "unknown fault"),
        ({"create_faults": "503"}, "must be a list"),
        ({"report_faults": ["no-id"]}, "only applies to campaign creation"),
        ({"report_faults": ["drop-after-create"]}, "only applies to campaign creation"),
        ({"report_faults": ["id:5"]}, "only applies to campaign creation"),
        ({"create_faults": ["drip"]}, "unknown fault"),
        ({"create_faults": ["id:abc"]}, "unknown fault"),
        ({"latency": -1}, "must be a number >= 0"),
        ({"report_rows_per_phone": 0}, "must be an integer >= 1"),
        ({"report_missing_every": True}, "must be an integer >= 0"),
        ({"report_phone_format": "pretty"}, "digits, e164, national"),
        ({"report_phone_field": ""}, "non-empty"),
        ({"faults": []}, "unknown sandbox option"),
    ],
)
def test_bad_options_are_refused(sandbox_token: str, options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SandboxServer(token=sandbox_token, **options)


# --- control endpoints ------------------------------------------------------------------------


def test_control_endpoints_show_set_and_reset(make_sandbox, sandbox_token: str) -> None:
    sandbox = make_sandbox(create_faults=["503"])
    client = Client(sandbox, sandbox_token)
    started = time.time()
    assert client.create(documented_campaign_body()).status_code == 503
    campaign_id = created_id(client.create(documented_campaign_body()))

    listed = client.control("GET", "campaigns").json()
    assert [(entry["id"], entry["body"]) for entry in listed] == [
        (campaign_id, documented_campaign_body())
    ]

    set_answer = client.control("POST", "faults", {"create_faults": ["drop", "500"], "latency": 0})
    assert set_answer.status_code == 200
    assert set_answer.json()["create_faults"] == ["drop", "500"]
    assert client.control("GET", "faults").json()["create_faults"] == ["drop", "500"]
    assert client.control("POST", "faults", {"create_faults": ["nope"]}).status_code == 422
    assert client.control("POST", "faults", ["drop"]).status_code == 422

    received = client.control("GET", "requests").json()
    assert [{k: v for k, v in r.items() if k != "received_at"} for r in received[:2]] == [
        {"method": "POST", "path": "/api/campaigns", "status": 503, "campaign_id": None},
        {"method": "POST", "path": "/api/campaigns", "status": 200, "campaign_id": campaign_id},
    ]
    arrivals = [r["received_at"] for r in received]
    assert arrivals == sorted(arrivals)
    assert started <= arrivals[0] and arrivals[-1] <= time.time()
    assert client.control("GET", f"campaigns/{campaign_id}").json()["id"] == campaign_id
    missing = client.control("GET", f"campaigns/{campaign_id + 1000}")
    assert (missing.status_code, missing.headers["Server"].split()[0]) == (404, "is74-sandbox/1")

    assert client.control("POST", "reset").json()["create_faults"] == ["503"]
    assert sandbox.campaigns == []
    assert client.create(documented_campaign_body()).status_code == 503
    assert created_id(client.create(documented_campaign_body())) > campaign_id


def test_unknown_paths_are_404(client: Client) -> None:
    assert client.post("/api/campaign", documented_campaign_body()).status_code == 404
    assert client.session.get(client.url + "/api/campaigns", timeout=5).status_code == 404
    assert client.control("GET", "nothing").status_code == 404


def test_the_log_holds_no_phone_and_no_token(
    client: Client, sandbox_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="callbridge.sandbox")
    campaign_id = created_id(client.create(documented_campaign_body(*PHONES)))
    client.report(campaign_id)
    client.create(changed(documented_campaign_body(*PHONES), "phones.1.phone", "89123456790"))

    assert f"POST /api/campaigns -> 200 campaign {campaign_id}" in caplog.text
    assert f"POST /api/analytics/1/report -> 200 campaign {campaign_id}" in caplog.text
    assert sandbox_token not in caplog.text
    assert "912345679" not in caplog.text


# --- the command line -------------------------------------------------------------------------


def run_sandbox(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_command_serves_until_sigterm_and_logs_each_call(sandbox_token: str) -> None:
    process = run_sandbox(
        "--create-fault",
        "503",
        "--create-fault",
        "drop-after-create",
        env={"IS74_API_TOKEN": sandbox_token},
    )
    try:
        line = process.stdout.readline()
        url = line.split()[line.split().index("on") + 1]
        post = functools.partial(
            requests.post,
            url + "/api/campaigns",
            json=documented_campaign_body(),
            headers={"Authorization": f"Bearer {sandbox_token}"},
            timeout=5,
        )
        assert post().status_code == 503
        with pytest.raises(requests.ConnectionError):
            post()  # created, and the answer dropped
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert sandbox_token not in line + stdout + stderr
    assert "callbridge.sandbox POST /api/campaigns -> 503\n" in stderr
    # the campaign the client never heard of is named in the log
    assert f"callbridge.sandbox POST /api/campaigns -> hung up campaign {FIRST_CAMPAIGN_ID}" in (
        stderr
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [((), "--token or set IS74_API_TOKEN"), (("--token", "t", "--create-fault", "x"), "x")],
    ids=["no-token", "bad-fault"],
)
def test_the_command_refuses_unusable_flags(args: tuple[str, ...], words: str) -> None:
    environ = {key: value for key, value in os.environ.items() if key != "IS74_API_TOKEN"}
    process = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "0", *args],
        cwd=ROOT,
        env={**environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=10,
    )

    assert process.returncode == 2
    assert words in process.stderr
