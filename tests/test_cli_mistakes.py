"""What an operator gets wrong, through the real CLI: one line naming the mistake, exit 2, never
a traceback; every command naming the broker, store, platform and queues it uses, without a
password; ``send`` refusing what the worker would reject; ``run --help`` naming the settings; the
demo saying where it stopped."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from adapters.config import DOCUMENTED_VARIABLES
from tests.builders import call_request
from tests.plugins.services import ROOT, callbridge

EXIT_USAGE = 2


def clean_env(**more: str) -> dict[str, str]:
    """The machine's environment with none of callbridge's settings, and ``more``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DOCUMENTED_VARIABLES and not key.startswith("SENTRY")
    }
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **more}


def mistake(result: subprocess.CompletedProcess) -> str:
    """The one line saying what is wrong: the last of stderr, after the line naming what the
    command uses. Nothing on stdout, no traceback."""
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert len(lines) == 1 or " using " in lines[0]
    return lines[-1]


@pytest.fixture
def request_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(call_request("cli-ok"), ensure_ascii=False))
    return path


# -- item 1: one line per mistake --------------------------------------------------------------


def test_send_names_a_file_it_cannot_read(tmp_path) -> None:
    missing = mistake(callbridge("send", "missing.json", cwd=tmp_path, env=clean_env()))
    assert missing == "callbridge send: cannot read missing.json: No such file or directory"
    folder = mistake(callbridge("send", str(tmp_path), cwd=tmp_path, env=clean_env()))
    assert folder == f"callbridge send: cannot read {tmp_path}: Is a directory"


def test_a_bad_argument_is_one_line(tmp_path) -> None:
    assert mistake(callbridge("health", "--max-due-age", "soon", env=clean_env())) == (
        "callbridge health: argument --max-due-age: must be a number of seconds > 0 "
        "(see callbridge health --help)"
    )
    assert mistake(callbridge("report", "twelve", env=clean_env())).startswith(
        "callbridge report: argument campaign_id: 'twelve' is not a campaign id (1 to 2^63 - 1)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "BROKER_URL",
            "rabbitmq://crm:pw@127.0.0.1//",
            "BROKER_URL='rabbitmq://crm:***@127.0.0.1//'",
        ),
        (
            "DATABASE_URL",
            "mysql://crm:pw@127.0.0.1/cb",
            "DATABASE_URL='mysql://crm:***@127.0.0.1/cb'",
        ),
        ("HTTP_TIMEOUT_SECONDS", "soon", "HTTP_TIMEOUT_SECONDS='soon': must be a number"),
    ],
)
@pytest.mark.parametrize("command", [("status", "r-1"), ("send", "request.json"), ("run",)])
def test_a_bad_setting_stops_every_command_with_one_line(
    tmp_path, request_file, command, variable, value, said
) -> None:
    result = callbridge(*command, cwd=tmp_path, env=clean_env(**{variable: value}))
    line = mistake(result)
    assert line.startswith(f"callbridge {command[0]}: {said}")
    assert "pw" not in result.stderr


def test_a_command_refuses_a_sqlite_store_that_is_not_there(tmp_path) -> None:
    for command in (("status", "r-1"), ("events", "r-1"), ("resolve", "r-1", "--resend")):
        line = mistake(callbridge(*command, cwd=tmp_path, env=clean_env()))
        assert line == (
            f"callbridge {command[0]}: DATABASE_URL: no store at {tmp_path}/var/callbridge.db "
            "(no worker has run on it); run the command with the worker's DATABASE_URL, or from "
            "the folder the worker runs in"
        )
    health = callbridge("health", cwd=tmp_path, env=clean_env())
    assert health.returncode == 1, "a probe hears unhealthy: no worker has run there"
    assert health.stdout.startswith(f"unhealthy: DATABASE_URL: no store at {tmp_path}/var/")
    assert not (tmp_path / "var" / "callbridge.db").exists()


@pytest.mark.postgres
def test_postgresql_urls_mean_psycopg_3_and_a_missing_database_is_one_line(
    postgres_url, tmp_path
) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    for url in (plain, plain.replace("postgresql://", "postgres://")):
        known = callbridge("status", "r-1", env=clean_env(DATABASE_URL=url))
        assert known.returncode == 1, known.stderr
        assert known.stdout.startswith("request r-1: unknown"), known.stderr

    gone = plain.rsplit("/", 1)[0] + "/callbridge_no_such_database"
    line = mistake(callbridge("status", "r-1", env=clean_env(DATABASE_URL=gone)))
    assert line.startswith("callbridge status: DATABASE_URL: PostgreSQL ")
    assert line.endswith('database "callbridge_no_such_database" does not exist')
    assert mistake(callbridge("run", env=clean_env(DATABASE_URL=gone))).startswith(
        "callbridge run: DATABASE_URL: PostgreSQL "
    )


def test_send_to_a_broker_that_is_not_there_fails_fast_in_one_line(
    request_file, refused_port
) -> None:
    port = refused_port
    started = time.monotonic()
    result = callbridge(
        "send",
        str(request_file),
        env=clean_env(BROKER_URL=f"amqp://crm:s3cret@127.0.0.1:{port}//"),
    )
    assert time.monotonic() - started < 8
    assert mistake(result) == (
        f"callbridge send: BROKER_URL: cannot connect to RabbitMQ crm@127.0.0.1:{port} vhost /: "
        "[Errno 111] Connection refused"
    )
    assert "s3cret" not in result.stderr


@pytest.mark.rabbitmq
def test_send_refuses_a_wrong_password_in_one_line(request_file, rabbitmq_url) -> None:
    wrong = rabbitmq_url.replace("guest:guest@", "guest:not-the-password@")
    result = callbridge("send", str(request_file), env=clean_env(BROKER_URL=wrong))
    assert "ACCESS_REFUSED" in mistake(result)
    assert "not-the-password" not in result.stderr


# -- item 2: where am I? -------------------------------------------------------------------------


def test_every_command_names_what_it_uses_without_a_secret(tmp_path, request_file) -> None:
    env = clean_env(
        BROKER_URL="amqp://crm:br0ker-pw@127.0.0.1:1//calls",
        DATABASE_URL="postgresql://cb:db-pw@127.0.0.1:1/callbridge",
        IS74_API_URL="https://ai-assistant.is74.ru",
        IS74_API_TOKEN="t0ken-never-shown",
    )
    uses = {
        ("status", "r-1"): "store PostgreSQL cb@127.0.0.1:1/callbridge",
        ("send", str(request_file)): "broker RabbitMQ crm@127.0.0.1:1 vhost /calls; queues "
        "crm.call_requests → crm.call_results, dead letters crm.call_requests.dead",
        ("report", "1", "--preview"): "store PostgreSQL cb@127.0.0.1:1/callbridge; platform "
        "https://ai-assistant.is74.ru; broker RabbitMQ crm@127.0.0.1:1 vhost /calls; queues",
    }
    for command, named in uses.items():
        result = callbridge(*command, cwd=tmp_path, env=env)
        first = result.stderr.splitlines()[0]
        assert first.startswith(f"callbridge {command[0]}: using {named}"), result.stderr
        for secret in ("br0ker-pw", "db-pw", "t0ken-never-shown"):
            assert secret not in result.stdout + result.stderr


def test_relative_defaults_are_named_as_absolute_paths(tmp_path, request_file) -> None:
    sent = callbridge("send", str(request_file), cwd=tmp_path, env=clean_env())
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.splitlines()[0].startswith(
        f"callbridge send: using broker file broker {tmp_path}/var/broker;"
    )
    assert "published request cli-ok to crm.call_requests" in sent.stdout


@pytest.mark.rabbitmq
def test_the_worker_names_what_it_uses_when_it_starts(
    sandbox, worker_env, start_worker, sqlite_url, queues
) -> None:
    worker = start_worker(worker_env(sandbox.url, sqlite_url))
    (started,) = [
        json.loads(line) for line in worker.log_text().splitlines() if '"worker started"' in line
    ]
    assert started["broker"] == "RabbitMQ guest@127.0.0.1:5672 vhost /"
    assert started["store"] == f"SQLite {sqlite_url.removeprefix('sqlite:///')}"
    assert started["platform"] == sandbox.url
    assert started["queues"] == (
        f"{queues.requests} → {queues.results}, dead letters {queues.dead}"
    )
    assert "guest:guest" not in worker.log_text()


# -- item 3: send checks what it sends -----------------------------------------------------------


def test_send_refuses_what_the_worker_would_reject_one_line_per_error(tmp_path) -> None:
    broken = tmp_path / "broken.json"
    body = call_request("cli-broken", schedule={"attempts": 9})
    del body["campaign"]["phone_id"]
    broken.write_text(json.dumps(body, ensure_ascii=False))
    result = callbridge("send", str(broken), cwd=tmp_path, env=clean_env())
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines()[1:] == [
        f"callbridge send: {broken}: campaign.phone_id: Missing data for required field.",
        f"callbridge send: {broken}: campaign.schedule.attempts: Must be greater than or equal "
        "to 1 and less than or equal to 5.",
        f"callbridge send: {broken}: not published (--raw publishes it anyway)",
    ]
    not_json = tmp_path / "not.json"
    not_json.write_text("{not json")
    result = callbridge("send", str(not_json), cwd=tmp_path, env=clean_env())
    assert result.stderr.splitlines()[1] == (
        f"callbridge send: {not_json}: body is not JSON: Expecting property name enclosed in "
        "double quotes at line 1 column 2"
    )
    assert result.stdout == ""


@pytest.mark.rabbitmq
def test_send_raw_publishes_what_it_would_refuse(
    tmp_path, rabbitmq_url, queues, dead_letter_reader
) -> None:
    env = clean_env(BROKER_URL=rabbitmq_url, **queues.env())
    not_json = tmp_path / "not.json"
    not_json.write_bytes(b"{not json")
    refused = callbridge("send", str(not_json), env=env)
    assert refused.returncode == EXIT_USAGE
    sent = callbridge("send", str(not_json), "--raw", env=env)
    assert sent.returncode == 0, sent.stderr
    published, warned = sent.stdout.splitlines()
    assert published.startswith("published request (no request_id) to")
    assert published.endswith("unchecked")
    assert warned == (
        "intake will refuse it: body is not JSON: Expecting property name enclosed in double "
        "quotes at line 1 column 2"
    )
    reader = type(dead_letter_reader)(rabbitmq_url, queues.requests, decode=bytes)
    assert reader.wait_for(lambda bodies: bodies) == [b"{not json"]


# -- item 10: the settings, and the demo's Ctrl-C ------------------------------------------------


def test_run_help_names_every_setting() -> None:
    result = callbridge("run", "--help", env=clean_env())
    assert result.returncode == 0
    assert "Every setting is an environment variable" in result.stdout
    assert [name for name in DOCUMENTED_VARIABLES if name not in result.stdout] == []


@pytest.mark.slow
def test_the_demo_says_where_it_stopped_on_ctrl_c(tmp_path) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "worker", "demo"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = []
        while not any("sent request demo-" in line for line in seen):
            line = demo.stdout.readline()
            assert line, "".join(seen)
            seen.append(line)
        demo.send_signal(signal.SIGINT)
        rest = demo.communicate(timeout=60)[0]
    finally:
        if demo.poll() is None:
            demo.kill()
    request_id = next(line for line in seen if "sent request" in line).split()[3]
    assert demo.returncode == 130, "".join(seen) + rest
    lines = rest.splitlines()
    assert "stopped by Ctrl-C while waiting for " in lines[-2], rest
    assert lines[-2].endswith("; the worker and the sandbox are stopped")
    assert lines[-1].endswith(
        f"see what became of request {request_id}: DATABASE_URL=sqlite:///{tmp_path}/var/demo/"
        f"callbridge.db callbridge status {request_id}"
    )
    assert "Traceback" not in rest
