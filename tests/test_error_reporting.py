"""Error reports: what reaches Sentry, with which tags, and that nothing personal does.

The end-to-end tests run a small worker-like script in a subprocess (the SDK is process-global)
against the fake Sentry of ``tests.plugins.sentry``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.config import load_settings
from adapters.error_reporting import init_sentry, scrub_breadcrumb, scrub_event
from tests.plugins.sentry import SentryServer

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "s3cr3t-T0ken-4a7b9c"
REQUEST = {
    "request_id": "crm-event-000123",
    "phones": [
        {
            "phone": "8 (912) 345-67-89",
            "external_id": "lead-42",
            "add_data": {"name": "Иванов Иван", "time": "10:00"},
        }
    ],
}

SCENARIO = """
import json, logging, os
from adapters import error_reporting
from adapters.config import load_settings

settings = load_settings()
started = error_reporting.init_sentry(settings, release="callbridge@test")
log = logging.getLogger("callbridge.create")

def create_campaign(request):
    add_data = request["phones"][0]["add_data"]
    phones = [entry["phone"] for entry in request["phones"]]
    raw = json.dumps(request, ensure_ascii=False).encode()
    note = f"calling {phones[0]} and 89123456789"
    header_line = f"Authorization: Bearer {settings.is74_api_token}"
    headers = {"Authorization": header_line}
    raise RuntimeError(f"platform refused {phones[0]} (token {settings.is74_api_token})")

request = json.loads(os.environ["CALL_REQUEST"])  # as a message body would arrive
log.error("platform said 422 for %s, token %s, data %s",
          "+79123456789", settings.is74_api_token, request)
reraised = False
try:
    with error_reporting.job_scope("create", request_id="crm-event-000123", project_id=1):
        with error_reporting.job_scope(
            "create", request_id="crm-event-000123", campaign_id=12345, project_id=1
        ):
            create_campaign(request)
except RuntimeError:
    reraised = True
error_reporting.capture_failed(
    request_id="crm-event-000124", outcome="unknown", status=502,
    message="bad gateway while sending +7 912 345 67 89",
)
error_reporting.capture_auth_pause(status=401, message=f"token {settings.is74_api_token} revoked")
error_reporting.flush()
print(json.dumps({"started": started, "reraised": reraised}))
"""

# Every form in which the scenario's phone, add_data value or token could leave the process.
FORBIDDEN = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"9123456789",
        r"912\D{1,3}345",
        r"345\D{0,3}67\D{0,3}89",
        r"Иванов",
        r"\\u0418\\u0432\\u0430\\u043d",  # JSON-escaped
        r"xd0\\+x98\\+xd0\\+xb2",  # escaped UTF-8 bytes in a repr
        re.escape(TOKEN),
    )
]


def run_scenario(sentry_server: SentryServer) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SENTRY_DSN": sentry_server.dsn,
        "SENTRY_ENVIRONMENT": "test",
        "IS74_API_TOKEN": TOKEN,
        "CALL_REQUEST": json.dumps(REQUEST),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def by_kind(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {}
    for event in events:
        kind = "exception" if "exception" in event else event["tags"].get("outcome", "auth")
        assert kind not in kinds, f"two {kind} events"
        kinds[kind] = event
    return kinds


def test_each_report_arrives_once_with_its_tags_and_level(sentry_server: SentryServer) -> None:
    assert run_scenario(sentry_server) == {"started": True, "reraised": True}

    events = sentry_server.events()
    # one per capture: the ERROR log line and the outer job_scope add no event of their own
    assert len(events) == 3
    kinds = by_kind(events)

    crash = kinds["exception"]
    assert crash["level"] == "error"
    assert crash["release"] == "callbridge@test"
    assert crash["environment"] == "test"
    assert crash["tags"] == {
        "stage": "create",
        "request_id": "crm-event-000123",
        "campaign_id": "12345",
        "project_id": "1",
    }
    (exception,) = crash["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "platform refused +7912***6789 (token ***)"
    frames = {frame["function"]: frame for frame in exception["stacktrace"]["frames"]}
    assert "create_campaign" in frames
    assert not [frame for frame in frames.values() if "vars" in frame], "locals were sent"
    (crumb,) = [c for c in crash["breadcrumbs"]["values"] if c["category"] == "callbridge.create"]
    assert crumb["level"] == "error"
    assert crumb["message"].startswith("platform said 422 for +7912***6789, token ***, data {")

    failed = kinds["unknown"]
    assert failed["level"] == "warning"
    assert failed["tags"] == {
        "request_id": "crm-event-000124",
        "outcome": "unknown",
        "status": "502",
    }
    assert failed["contexts"]["platform_error"] == {
        "status": 502,
        "message": "bad gateway while sending +7912***6789",
    }

    paused = kinds["auth"]
    assert paused["level"] == "error"
    assert paused["tags"] == {"status": "401"}
    assert paused["contexts"]["platform_error"]["message"] == "token *** revoked"


def test_no_phone_add_data_or_token_reaches_sentry(sentry_server: SentryServer) -> None:
    run_scenario(sentry_server)
    received = sentry_server.raw.decode("utf-8", "replace")
    assert len(sentry_server.events()) == 3  # the scan below looked at real reports
    assert "+7912***6789" in received
    for pattern in FORBIDDEN:
        assert not pattern.search(received), f"{pattern.pattern} reached Sentry"


def test_without_a_dsn_nothing_starts() -> None:
    assert init_sentry(load_settings({}), release="callbridge@test") is False


def test_scrub_event_walks_every_part_of_an_event() -> None:
    event = {
        "event_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "timestamp": "2026-11-27T04:00:00.123456Z",
        "message": "failed for +79123456789",
        "logentry": {"message": "failed for %s", "params": ["89123456789", TOKEN]},
        "exception": {
            "values": [
                {
                    "value": f"HTTP 401 with Bearer {TOKEN}",
                    "stacktrace": {
                        "frames": [
                            {
                                "lineno": 12,
                                "vars": {
                                    "payload": {"phones": [{"phone": "+79123456789"}]},
                                    "row": ("8 (912) 345-67-89", 12345),
                                    "raw": 'b\'{"add_data": {"name": "x"}}\'',
                                    "x-api-key": "abc",
                                },
                            }
                        ]
                    },
                }
            ]
        },
        "request": {"url": "https://platform/api/campaigns", "data": "{...}", "headers": {}},
        "extra": {"note": "to 89123456789", "body": b"..."},
        "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}},
        "tags": {"request_id": "crm-event-000123", "campaign_id": "12345"},
    }
    assert scrub_event(event, {}, secrets=(TOKEN,)) == {
        "event_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "timestamp": "2026-11-27T04:00:00.123456Z",
        "message": "failed for +7912***6789",
        "logentry": {"message": "failed for %s", "params": ["+7912***6789", "***"]},
        "exception": {
            "values": [
                {
                    "value": "HTTP 401 with Bearer ***",
                    "stacktrace": {
                        "frames": [
                            {
                                "lineno": 12,
                                "vars": {
                                    "payload": {"phones": "[Filtered]"},
                                    "row": ["+7912***6789", 12345],
                                    "raw": "b'{\"add_data\": ***}'",
                                    "x-api-key": "[Filtered]",
                                },
                            }
                        ]
                    },
                }
            ]
        },
        "request": {
            "url": "https://platform/api/campaigns",
            "data": "[Filtered]",
            "headers": "[Filtered]",
        },
        "extra": {"note": "to +7912***6789", "body": "[Filtered]"},
        "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}},
        "tags": {"request_id": "crm-event-000123", "campaign_id": "12345"},
    }


@pytest.mark.parametrize(
    "scrub",
    [
        lambda crumb: scrub_breadcrumb(crumb, {}, secrets=(TOKEN,)),
        lambda crumb: scrub_event({"breadcrumbs": {"values": [crumb]}}, {}, secrets=(TOKEN,))[
            "breadcrumbs"
        ]["values"][0],
    ],
    ids=["before_breadcrumb", "in_the_event"],
)
def test_a_breadcrumb_keeps_its_data_but_not_what_is_personal(scrub: Any) -> None:
    crumb = {
        "type": "log",
        "category": "callbridge.create",
        "message": f"sending to 89123456789 with {TOKEN}",
        "data": {"request_id": "crm-1", "campaign_id": 12345, "phone": "+79123456789"},
    }
    assert scrub(crumb) == {
        "type": "log",
        "category": "callbridge.create",
        "message": "sending to +7912***6789 with ***",
        "data": {"request_id": "crm-1", "campaign_id": 12345, "phone": "[Filtered]"},
    }
