"""Secrets stay home: no message body, add_data or report row reaches Sentry, and a token that
cannot be sent in a header stops the worker at start — on the real RabbitMQ, with a real worker.
"""

from __future__ import annotations

import json

import pytest

from tests.builders import call_request, publish
from tests.plugins.services import callbridge

pytestmark = [pytest.mark.rabbitmq]

SECRET_NAME = "Секретова Тайна"
SECRET_CODE = "tainy-kod-7F3Q"


def intake_breaking_message(request_id: str) -> bytes:
    """A valid-looking request whose nested add_data holds secrets, with an integer of 5,000
    digits after it: Python's JSON decoder raises inside intake (not a JSONDecodeError)."""
    body = call_request(request_id, phones=1)
    body["phones"][0]["add_data"] = {
        "name": SECRET_NAME,
        "card": {"holder": SECRET_NAME, "code": SECRET_CODE, "visits": [{"note": SECRET_CODE}]},
    }
    text = json.dumps(body, ensure_ascii=False)
    return (text[:-1] + ', "z": ' + "7" * 5000 + "}").encode()


def test_a_nested_add_data_of_a_message_that_failed_intake_never_reaches_sentry(
    make_sandbox,
    worker_env,
    start_worker,
    rabbitmq_url,
    queues,
    results_reader,
    sqlite_url,
    sentry_server,
):
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, sqlite_url, SENTRY_DSN=sentry_server.dsn)
    worker = start_worker(env)
    publish(rabbitmq_url, queues.requests, intake_breaking_message("leaky-1"))
    valid = [f"after-leak-{n}" for n in range(3)]
    for request_id in valid:
        publish(rabbitmq_url, queues.requests, call_request(request_id))

    events = results_reader.wait_for(
        lambda events: {e["request_id"] for e in events} >= set(valid), timeout=30
    )
    assert {e["type"] for e in events if e["request_id"] in valid} == {"campaign.created"}
    assert callbridge("health", env=env).returncode == 0
    assert worker.terminate() == 0  # it flushes what it reports to Sentry before it exits

    received = sentry_server.raw.decode("utf-8", "replace")
    for secret in (SECRET_NAME, SECRET_CODE):
        for form in (secret, json.dumps(secret)[1:-1], repr(secret.encode())[2:-1]):
            assert form not in received, f"{form!r} reached Sentry"
    for event in sentry_server.events():
        for exception in event.get("exception", {}).get("values", []):
            for frame in exception.get("stacktrace", {}).get("frames", []):
                assert "vars" not in frame, "a frame's locals reached Sentry"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IS74_API_TOKEN", "first-half\nsecond-half"),
        ("IS74_API_TOKEN", "first-half second-half"),
        ("IS74_API_TOKEN", "first-half\u00a0second-half"),
        ("IS74_AUTH_HEADER", "X-Api\nKey"),
    ],
    ids=["newline", "space", "non-ascii", "header-name"],
)
def test_a_value_that_cannot_be_sent_in_a_header_is_refused_at_start(
    make_sandbox, worker_env, rabbitmq_url, queues, results_reader, sqlite_url, variable, value
):
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, sqlite_url, **{variable: value})
    publish(rabbitmq_url, queues.requests, call_request("never-sent"))

    done = callbridge("run", env=env, timeout=30)

    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert variable in line
    if variable == "IS74_API_TOKEN":
        assert "first-half" not in line and "second-half" not in line
    assert sandbox.requests == [], "nothing may be sent with such a value"
    assert results_reader.poll() == []
