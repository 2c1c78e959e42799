"""The platform client against the sandbox over real HTTP: every row of guarantee 4, and reports."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from adapters.config import ConfigError, Settings, load_settings
from adapters.platform_client import (
    AuthFailed,
    Created,
    NotCreated,
    PlatformClient,
    ReportFailed,
    ReportFetched,
    RetryLater,
    Unknown,
    classify_create_answer,
    classify_report_answer,
    platform_message,
)
from sandbox import SandboxServer
from tests.plugins.sandbox import documented_campaign_body, documented_report_query

PHONE = "+79123456789"
BODY = json.dumps(documented_campaign_body(PHONE)).encode()


def settings_for(url: str, token: str, **environ: str) -> Settings:
    return load_settings({"IS74_API_URL": url, "IS74_API_TOKEN": token, **environ})


@pytest.fixture
def client_for() -> Iterator:
    """``client_for(url, token, **environ)``: a PlatformClient, closed after the test."""
    clients: list[PlatformClient] = []

    def make(url: str, token: str, **environ: str) -> PlatformClient:
        clients.append(PlatformClient(settings_for(url, token, **environ)))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def posts_received(sandbox: SandboxServer) -> int:
    return sum(1 for received in sandbox.requests if received.path == "/api/campaigns")


# --- create: every row of the table, through the sandbox ---------------------------------------

CREATE_TABLE = [
    # (fault, outcome type, status, retry_after, campaigns the sandbox holds afterwards)
    (None, Created, None, None, 1),
    ("429:retry-after=3", RetryLater, 429, 3.0, 0),
    (429, RetryLater, 429, None, 0),
    ("503", RetryLater, 503, None, 0),
    ("503:retry-after=120", RetryLater, 503, 120.0, 0),
    ("400", NotCreated, 400, None, 0),
    ("404", NotCreated, 404, None, 0),
    ("409", NotCreated, 409, None, 0),
    ("418", NotCreated, 418, None, 0),
    ("422", NotCreated, 422, None, 0),
    ("401", AuthFailed, 401, None, 0),
    ("403", AuthFailed, 403, None, 0),
    ("500", Unknown, 500, None, 0),
    ("502", Unknown, 502, None, 0),
    ("504", Unknown, 504, None, 0),
    ("507", Unknown, 507, None, 0),
    ("drop", Unknown, None, None, 0),
    ("drop-after-create", Unknown, None, None, 1),
    ("no-id", Unknown, 200, None, 1),
    ("slow:1", Unknown, None, None, 1),
]


@pytest.mark.parametrize(
    ("fault", "outcome_type", "status", "retry_after", "campaigns"),
    CREATE_TABLE,
    ids=[str(row[0]) for row in CREATE_TABLE],
)
def test_create_outcome_for_each_platform_answer(
    make_sandbox,
    sandbox_token: str,
    client_for,
    fault: str | int | None,
    outcome_type: type,
    status: int | None,
    retry_after: float | None,
    campaigns: int,
) -> None:
    sandbox = make_sandbox(create_faults=[fault] if fault else [])
    client = client_for(sandbox.url, sandbox_token, HTTP_TIMEOUT_SECONDS="0.3")

    outcome = client.create_campaign(BODY)

    assert type(outcome) is outcome_type
    if outcome_type is Created:
        assert outcome == Created(sandbox.campaigns[0].id)
    else:
        assert outcome.status == status
        assert sandbox_token not in outcome.message
        assert PHONE[2:] not in outcome.message
    if outcome_type is RetryLater:
        assert outcome.retry_after == retry_after
    assert len(sandbox.campaigns) == campaigns
    assert posts_received(sandbox) == 1  # never sent twice


def test_a_read_timeout_is_unknown_and_says_so(make_sandbox, sandbox_token, client_for) -> None:
    sandbox = make_sandbox(create_faults=["slow:1"])

    outcome = client_for(sandbox.url, sandbox_token, HTTP_TIMEOUT_SECONDS="0.2").create_campaign(
        BODY
    )

    assert isinstance(outcome, Unknown)
    assert "ReadTimeout" in outcome.message


def test_a_broken_connection_after_sending_is_unknown(
    make_sandbox, sandbox_token: str, client_for
) -> None:
    sandbox = make_sandbox(create_faults=["drop"])

    outcome = client_for(sandbox.url, sandbox_token).create_campaign(BODY)

    assert isinstance(outcome, Unknown)
    assert "may have reached the platform" in outcome.message
    assert "RemoteDisconnected" in outcome.message


def test_a_refused_port_is_retry_later(refused_port: int, sandbox_token: str, client_for) -> None:
    outcome = client_for(f"http://127.0.0.1:{refused_port}", sandbox_token).create_campaign(BODY)

    assert isinstance(outcome, RetryLater)
    assert outcome.status is None
    assert "Connection refused" in outcome.message


def test_a_name_that_does_not_resolve_is_retry_later(sandbox_token: str, client_for) -> None:
    outcome = client_for("http://no-such-host.invalid", sandbox_token).create_campaign(BODY)

    assert isinstance(outcome, RetryLater)
    assert "NameResolutionError" in outcome.message


@pytest.fixture
def unanswering_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connection is never established."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port), timeout=1)
        yield port
        filler.close()


def test_a_connect_timeout_is_retry_later(
    unanswering_port: int, sandbox_token: str, client_for
) -> None:
    client = client_for(
        f"http://127.0.0.1:{unanswering_port}", sandbox_token, HTTP_TIMEOUT_SECONDS="0.2"
    )

    outcome = client.create_campaign(BODY)

    assert isinstance(outcome, RetryLater)
    assert "ConnectTimeout" in outcome.message


def test_a_wrong_token_is_auth_failed(sandbox: SandboxServer, client_for) -> None:
    outcome = client_for(sandbox.url, "not-the-token").create_campaign(BODY)

    assert outcome == AuthFailed(401, "Unauthenticated.")
    assert sandbox.campaigns == []


def test_the_auth_header_name_comes_from_settings(
    make_sandbox, sandbox_token: str, client_for
) -> None:
    sandbox = make_sandbox(auth_header="X-Api-Key")
    renamed = client_for(sandbox.url, sandbox_token, IS74_AUTH_HEADER="X-Api-Key")
    default = client_for(sandbox.url, sandbox_token)

    assert isinstance(renamed.create_campaign(BODY), Created)
    assert isinstance(default.create_campaign(BODY), AuthFailed)
    assert len(sandbox.campaigns) == 1


def test_a_refused_body_is_not_created_with_the_platforms_reasons(
    sandbox: SandboxServer, sandbox_token: str, client_for
) -> None:
    body = documented_campaign_body("89123456789")
    body["campaign"]["schedule"]["interval"] = 5

    outcome = client_for(sandbox.url, sandbox_token).create_campaign(json.dumps(body).encode())

    assert isinstance(outcome, NotCreated)
    assert outcome.status == 422
    assert "campaign.schedule.interval: must be a string" in outcome.message
    assert "phones.0.phone: must be an E.164 number" in outcome.message
    assert "9123456789" not in outcome.message


def test_the_client_needs_a_token(sandbox: SandboxServer) -> None:
    with pytest.raises(ConfigError, match="IS74_API_TOKEN"):
        PlatformClient(load_settings({"IS74_API_URL": sandbox.url}))


def test_every_call_is_observed(sandbox: SandboxServer, sandbox_token: str) -> None:
    seen: list[tuple[str, str, float]] = []
    client = PlatformClient(
        settings_for(sandbox.url, sandbox_token), observe=lambda *call: seen.append(call)
    )
    created = client.create_campaign(BODY)
    client.fetch_report(1, documented_report_query(created.campaign_id))
    client.close()

    assert [(endpoint, kind) for endpoint, kind, _ in seen] == [
        ("create", "created"),
        ("report", "fetched"),
    ]
    assert all(seconds > 0 for *_, seconds in seen)


def test_a_failing_observer_does_not_lose_the_outcome(
    sandbox: SandboxServer, sandbox_token: str
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics are down")

    client = PlatformClient(settings_for(sandbox.url, sandbox_token), observe=broken)

    assert isinstance(client.create_campaign(BODY), Created)
    client.close()


def test_many_creates_reuse_one_connection(sandbox: SandboxServer, sandbox_token: str) -> None:
    session = requests.Session()
    client = PlatformClient(settings_for(sandbox.url, sandbox_token), session=session)

    outcomes = [client.create_campaign(BODY) for _ in range(50)]

    pools = session.get_adapter(sandbox.url).poolmanager.pools
    # urllib3's pool container has keys() but cannot be iterated itself.
    connections_opened = [pools[key].num_connections for key in pools.keys()]  # noqa: SIM118
    client.close()
    assert all(isinstance(outcome, Created) for outcome in outcomes)
    assert len({outcome.campaign_id for outcome in outcomes}) == 50
    assert connections_opened == [1]


# --- create: the classification as a pure function ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "content", "expected"),
    [
        (200, b'{"campaign": {"id": 7}}', Created(7)),
        (201, b'{"campaign": {"id": "42"}}', Created(42)),
        (200, b'{"campaign": {"id": 0}}', Unknown(200, "")),
        (200, b'{"campaign": {"id": -3}}', Unknown(200, "")),
        (200, b'{"campaign": {"id": true}}', Unknown(200, "")),
        (200, b'{"campaign": {"id": "12a"}}', Unknown(200, "")),
        (200, b'{"campaign": {"id": 4.0}}', Unknown(200, "")),
        (200, b'{"id": 7}', Unknown(200, "")),
        (200, b'[{"campaign": {"id": 7}}]', Unknown(200, "")),
        (200, b"<html>OK</html>", Unknown(200, "")),
        (204, b"", Unknown(204, "")),
        (301, b"", Unknown(301, "")),
        (307, b"", Unknown(307, "")),
        (429, b"", RetryLater(429, "", None)),
        (503, b"", RetryLater(503, "", None)),
        (401, b"", AuthFailed(401, "")),
        (403, b"", AuthFailed(403, "")),
        (400, b"", NotCreated(400, "")),
        (405, b"", NotCreated(405, "")),
        (413, b"", NotCreated(413, "")),
        (499, b"", NotCreated(499, "")),
        (500, b"", Unknown(500, "")),
        (599, b"", Unknown(599, "")),
    ],
)
def test_classify_create_answer(status: int, content: bytes, expected: object) -> None:
    outcome = classify_create_answer(status, {}, content)

    assert type(outcome) is type(expected)
    assert getattr(outcome, "campaign_id", None) == getattr(expected, "campaign_id", None)
    assert getattr(outcome, "status", None) == getattr(expected, "status", None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"message": "Campaign exists"}', "Campaign exists"),
        (b'{"error": "Bad schedule"}', "Bad schedule"),
        (b'{"error": {"message": "Nested"}}', "Nested"),
        (b'{"detail": "Too large"}', "Too large"),
        (b'{"message": "Invalid", "errors": {"a.b": ["x", "y"]}}', "Invalid — a.b: x, y"),
        (b"<html>\n  <h1>Bad   Gateway</h1>\n</html>", "<html> <h1>Bad Gateway</h1> </html>"),
        (b"", "HTTP 418"),
        (b'{"message": "no phone +7 (912) 345-67-89 here"}', "no phone [phone] here"),
        (b'{"message": "token s3cret-token is bad"}', "token [token] is bad"),
        (b'{"message": "call 89123456789, id 12345 on 2026-12-01"}', "call [phone], id 12345"),
    ],
)
def test_platform_message(content: bytes, message: str) -> None:
    assert platform_message(418, content, token="s3cret-token").startswith(message)


def test_platform_message_is_short() -> None:
    errors = {f"phones.{index}.phone": ["must be an E.164 number"] for index in range(1000)}

    message = platform_message(422, json.dumps({"message": "bad", "errors": errors}).encode())

    assert len(message) <= 500
    assert "(and 995 more)" in message


# --- reports ----------------------------------------------------------------------------------


def test_fetch_report_returns_the_decoded_answer(
    sandbox: SandboxServer, sandbox_token: str, client_for
) -> None:
    client = client_for(sandbox.url, sandbox_token)
    created = client.create_campaign(BODY)

    outcome = client.fetch_report(1, documented_report_query(created.campaign_id))

    assert isinstance(outcome, ReportFetched)
    assert [row["phone_number"] for row in outcome.data["data"]] == [PHONE[1:]]
    assert outcome.data["count"] == 1


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        ("500", 500, None),
        ("503:retry-after=30", 503, 30.0),
        ("drop", None, None),
        ("404", 404, None),
    ],
)
def test_fetch_report_failures_are_retryable(
    make_sandbox, sandbox_token: str, client_for, fault: str, status, retry_after
) -> None:
    sandbox = make_sandbox(report_faults=[fault])
    client = client_for(sandbox.url, sandbox_token)
    created = client.create_campaign(BODY)

    outcome = client.fetch_report(1, documented_report_query(created.campaign_id))

    assert isinstance(outcome, ReportFailed)
    assert (outcome.status, outcome.retry_after) == (status, retry_after)
    assert sandbox_token not in outcome.message


def test_fetch_report_of_an_unknown_campaign_fails(
    sandbox: SandboxServer, sandbox_token: str, client_for
) -> None:
    outcome = client_for(sandbox.url, sandbox_token).fetch_report(1, documented_report_query(99))

    assert isinstance(outcome, ReportFailed)
    assert outcome.status == 404


def test_fetch_report_with_a_wrong_token_is_auth_failed(sandbox: SandboxServer, client_for):
    outcome = client_for(sandbox.url, "wrong").fetch_report(1, documented_report_query(1))

    assert outcome == AuthFailed(401, "Unauthenticated.")


def test_a_report_with_nan_or_infinity_reads_them_as_no_value() -> None:
    outcome = classify_report_answer(
        200, {}, b'{"data": [{"duration": NaN, "score": Infinity, "rank": -Infinity}]}'
    )
    assert outcome == ReportFetched({"data": [{"duration": None, "score": None, "rank": None}]})


def test_a_report_number_too_large_for_a_float_reads_as_no_value() -> None:
    outcome = classify_report_answer(200, {}, b'{"data": [{"duration": 1e999, "score": 2.5}]}')
    assert outcome == ReportFetched({"data": [{"duration": None, "score": 2.5}]})


# --- answers no client should trust -------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"campaign": {"id": 7, "detail": ' + DEEP + b"}}", "nest deeper than 64 levels"),
        (b'{"campaign": {"id": 7}, "n": ' + b"7" * 5000 + b"}", "4300 digits"),
        (b"\xff\xfe{}", "cannot read"),
    ],
)
def test_a_2xx_that_cannot_be_decoded_is_unknown_and_never_raises(content: bytes, words: str):
    outcome = classify_create_answer(200, {}, content)

    assert type(outcome) is Unknown
    assert words in outcome.message
    report = classify_report_answer(200, {}, content)
    assert type(report) is ReportFailed
    assert words in report.message


@pytest.mark.parametrize(
    ("campaign_id", "shown"),
    [
        (str(2**63).encode(), str(2**63)),
        (b'"' + str(2**64).encode() + b'"', str(2**64)),
        (b"-5", "-5"),
        (b'"12 34\\n"', "12?34?"),
        (b'"' + b"9" * 60 + b'"', "9" * 40 + "..."),
        (b"[1]", "a JSON list"),
    ],
)
def test_a_campaign_id_the_stores_cannot_hold_is_unknown_and_shown(campaign_id, shown) -> None:
    outcome = classify_create_answer(200, {}, b'{"campaign": {"id": ' + campaign_id + b"}}")

    assert outcome == Unknown(200, outcome.message, shown_campaign_id=shown)
    assert shown in outcome.message
    assert classify_create_answer(200, {}, b'{"campaign": {"id": 9223372036854775807}}') == (
        Created(2**63 - 1)
    )


@pytest.mark.parametrize("status", [201, 422, 429, 500])
def test_an_answer_cut_short_is_unknown_when_2xx_and_otherwise_what_its_status_says(status):
    cut_short = "its answer is larger than 4096 bytes (PLATFORM_MAX_ANSWER_BYTES)"

    outcome = classify_create_answer(status, {}, b'{"campaign": {"id": 7', cut_short=cut_short)

    expected = {201: Unknown, 422: NotCreated, 429: RetryLater, 500: Unknown}[status]
    assert type(outcome) is expected
    assert outcome.status == status
    assert cut_short in outcome.message
    report = classify_report_answer(status, {}, b"{", cut_short=cut_short)
    assert type(report) is ReportFailed


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("endless", "larger than 65536 bytes (PLATFORM_MAX_ANSWER_BYTES)"),
        ("drip:0.2", "no whole answer within 1 s (HTTP_CALL_DEADLINE_SECONDS)"),
        ("deep:5000", "nest deeper than 64 levels"),
    ],
)
def test_a_hostile_answer_is_bounded_for_creation_and_reports(
    make_sandbox, sandbox_token: str, client_for, fault: str, words: str
) -> None:
    sandbox = make_sandbox(create_faults=[fault], report_faults=[fault])
    client = client_for(
        sandbox.url,
        sandbox_token,
        PLATFORM_MAX_ANSWER_BYTES="65536",
        HTTP_CALL_DEADLINE_SECONDS="1",
    )

    started = time.monotonic()
    outcome = client.create_campaign(BODY)
    report = client.fetch_report(1, documented_report_query(sandbox.campaigns[0].id))

    assert time.monotonic() - started < 4  # two calls, each cut at its deadline at the latest
    assert (type(outcome), outcome.status) == (Unknown, 200)
    assert words in outcome.message
    assert (type(report), report.status) == (ReportFailed, 200)
    assert words in report.message
    assert len(sandbox.campaigns) == 1  # created once, never sent again
    assert isinstance(client.create_campaign(BODY), Created), "the client works on after it"


def test_the_deadline_also_cuts_an_answer_whose_headers_drip(sandbox_token, client_for) -> None:
    """The status line and headers one byte every 0.3 s: no read ever times out."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    def drip() -> None:
        connection, _ = listener.accept()
        with connection, contextlib.suppress(OSError):
            connection.recv(65536)
            for byte in answer:
                time.sleep(0.3)
                connection.sendall(bytes([byte]))

    threading.Thread(target=drip, daemon=True).start()
    client = client_for(
        f"http://127.0.0.1:{listener.getsockname()[1]}",
        sandbox_token,
        HTTP_CALL_DEADLINE_SECONDS="1",
    )

    started = time.monotonic()
    outcome = client.create_campaign(BODY)

    assert time.monotonic() - started < 2
    assert outcome == Unknown(
        None,
        "the request may have reached the platform: no whole answer within 1 s "
        "(HTTP_CALL_DEADLINE_SECONDS)",
    )
    listener.close()


def test_the_clients_own_session_reuses_one_connection(sandbox, sandbox_token, client_for):
    client = client_for(sandbox.url, sandbox_token)

    outcomes = [client.create_campaign(BODY) for _ in range(50)]

    assert all(isinstance(outcome, Created) for outcome in outcomes)
    opened = [r for r in sandbox.requests if r.path == "/api/campaigns"]
    assert len(opened) == 50
    pools = client._session.get_adapter(sandbox.url).poolmanager.pools
    assert [pools[key].num_connections for key in pools.keys()] == [1]  # noqa: SIM118


def test_no_error_text_quotes_a_header_or_the_token(sandbox: SandboxServer) -> None:
    """Settings refuse such a token at start; past them, the client still never quotes it."""
    settings = settings_for(sandbox.url, "x").replace(is74_api_token="first\nsecond")
    client = PlatformClient(settings)

    outcome = client.create_campaign(BODY)

    assert type(outcome) is RetryLater, "an invalid header is never sent"
    assert outcome.message == (
        "no connection to the platform: InvalidHeader: the auth header cannot be sent "
        "(IS74_AUTH_HEADER, IS74_API_TOKEN)"
    )
    assert sandbox.requests == []
    client.close()


@pytest.mark.parametrize("token", ['sl\\ash"quote', "plain-token"])
def test_the_token_is_scrubbed_however_the_platform_escapes_it(token: str) -> None:
    for written in (json.dumps({"message": f"bad {token}"}), f"bad {token!r}"):
        message = platform_message(418, written.encode(), token=token)
        assert "[token]" in message
        assert "ash" not in message and "plain" not in message
