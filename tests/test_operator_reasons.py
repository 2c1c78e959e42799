"""The reasons an operator is shown, through the real CLI beside a real worker on RabbitMQ: why a
request was rejected, failed or waits (``status``), what was published (``events``), the dead
letters whole (``--show``, ``--drop``), a platform down or unknown outcomes waiting (``health``),
a campaign id checked on the sandbox (``resolve``), and log lines that keep ids greppable."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from adapters.logs import NOISY_LOGGERS
from tests.builders import call_request, e164, publish
from tests.plugins.services import ROOT, callbridge

pytestmark = [pytest.mark.rabbitmq]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return callbridge(*args, env=env, timeout=90)


def until(check: Callable[[], subprocess.CompletedProcess | bool], timeout: float = 30):
    """Run ``check`` until it holds (a truthy value or a command exiting 0); the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        done = result.returncode == 0 if isinstance(result, subprocess.CompletedProcess) else result
        if done:
            return result
        assert time.monotonic() < deadline, getattr(result, "stdout", result)
        time.sleep(0.3)


def status_lines(env: dict[str, str], request_id: str) -> dict[str, list[str]]:
    """``callbridge status``'s ``label: value`` lines, by label."""
    lines: dict[str, list[str]] = {}
    for line in cli(env, "status", request_id).stdout.splitlines():
        if match := re.fullmatch(r"  ([a-z ]+): +(.*)", line):
            lines.setdefault(match[1], []).append(match[2])
    return lines


@pytest.fixture
def env(make_sandbox, worker_env, sqlite_url):
    def make(sandbox=None, **more: str) -> dict[str, str]:
        return worker_env((sandbox or make_sandbox()).url, sqlite_url, **more)

    return make


# -- item 5: status says why; events shows what went out --------------------------------------


def test_status_shows_the_errors_of_a_rejection_and_the_error_of_a_failure(
    env, make_sandbox, start_worker, rabbitmq_url, queues, results_reader
):
    environment = env(make_sandbox(create_faults=["422"]))
    start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("why-failed"))
    publish(rabbitmq_url, queues.requests, call_request("why-rejected", schedule={"attempts": 9}))
    results_reader.wait_for(lambda events: len(events) == 2)

    rejected = status_lines(environment, "why-rejected")
    assert rejected["state"] == ["rejected"]
    assert rejected["error"] == [
        "campaign.schedule.attempts: Must be greater than or equal to 1 and less than or equal "
        "to 5."
    ]
    failed = status_lines(environment, "why-failed")
    assert (failed["state"], failed["outcome"]) == (["failed"], ["not_created"])
    (error,) = failed["error"]
    assert error.startswith("HTTP 422: injected fault")


def test_status_and_health_show_creation_paused_on_a_refused_token(
    env, make_sandbox, start_worker, rabbitmq_url, queues
):
    environment = env(make_sandbox(token="not-the-workers-token"))
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("why-paused"))
    worker.wait_for_log('"paused"')

    shown = until(lambda: status_lines(environment, "why-paused").get("paused"))
    (paused,) = shown
    assert re.fullmatch(
        r"worker \d+ \(host .+\): the platform refuses the API token \(HTTP 401\) since "
        r"\S+Z; next try at \S+Z",
        paused,
    ), paused
    assert status_lines(environment, "why-paused")["state"] == ["received"]
    health = cli(environment, "health")
    assert health.returncode == 0, "the pause alone fails no check"
    assert "; paused: worker " in health.stdout
    assert "refuses the API token (HTTP 401)" in health.stdout


def test_events_prints_what_was_published_phones_masked(
    env, start_worker, rabbitmq_url, queues, results_reader
):
    environment = env()
    start_worker(environment)
    body = call_request("ev-rejected", phones=2, first_phone=40, schedule={"attempts": 9})
    publish(rabbitmq_url, queues.requests, body, message_id="ev-1")
    results_reader.wait_for(lambda events: events)

    shown = until(lambda: "NOT published" not in cli(environment, "events", "ev-rejected").stdout)
    shown = cli(environment, "events", "ev-rejected")
    assert shown.returncode == 0, shown.stderr
    heads = [line for line in shown.stdout.splitlines() if line.startswith("#")]
    assert [head.split()[1:3] for head in heads] == [
        ["campaign.rejected", "ev-rejected:campaign.rejected"],
        ["dead_letter", "dead-letter:ev-1"],
    ]
    assert f"→ {queues.results}, queued " in heads[0] and ", published " in heads[0]
    rejected, dead = (
        json.loads(line.strip()) for line in shown.stdout.splitlines() if line.startswith("  ")
    )
    assert rejected["errors"] == {"campaign": {"schedule": {"attempts": [rejected_attempts()]}}}
    assert [entry["phone"] for entry in dead["phones"]] == ["+7912***0040", "+7912***0041"]
    assert dead["phones"][0]["add_data"] == {"name": "***"}
    assert "Секретов" not in shown.stdout
    missing = cli(environment, "events", "never-sent")
    assert (missing.returncode, missing.stdout) == (1, "request never-sent: no event stored\n")


def rejected_attempts() -> str:
    return "Must be greater than or equal to 1 and less than or equal to 5."


def test_events_follow_prints_events_as_they_come(
    env, start_worker, rabbitmq_url, queues, results_reader
):
    environment = env()
    start_worker(environment)
    follower = subprocess.Popen(
        [sys.executable, "-m", "worker", "events", "ev-follow", "--follow"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout.readline().startswith("following request ev-follow's events")
        publish(rabbitmq_url, queues.requests, call_request("ev-follow"))
        head = follower.stdout.readline()
        body = json.loads(follower.stdout.readline())
        assert head.startswith("#") and " campaign.created ev-follow:campaign.created → " in head
        assert body["type"] == "campaign.created"
        if head.rstrip().endswith("NOT published yet"):
            assert re.fullmatch(r"#\d+ published \S+Z\n", follower.stdout.readline())
        follower.send_signal(signal.SIGINT)
        assert follower.wait(20) == 130
    finally:
        if follower.poll() is None:
            follower.kill()


# -- item 6: dead letters shown whole, and dropped -------------------------------------------


def test_a_dead_letter_is_shown_whole_and_dropped_only_when_it_can_never_be_replayed(
    env, start_worker, rabbitmq_url, queues
):
    worker_env = env(MAX_MESSAGE_BYTES="4096")
    start_worker(worker_env)
    environment = env()  # the operator's: MAX_MESSAGE_BYTES back to its default
    broken = call_request("dl-broken", phones=1, first_phone=70, schedule={"attempts": 9})
    publish(rabbitmq_url, queues.requests, broken, message_id="dl-broken-1")
    publish(rabbitmq_url, queues.requests, call_request("dl-big", phones=40), message_id="big-1")
    until(lambda: cli(environment, "dead-letters").stdout.count("\n#") == 2)

    shown = cli(environment, "dead-letters", "--show", "dl-broken-1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("#1 id=dl-broken-1 request_id=dl-broken ")
    assert lines[1] == f"    campaign.schedule.attempts: {rejected_attempts()}"
    assert lines[2].startswith('  properties: {"message_id": "dl-broken-1"')
    assert lines[3].startswith('  headers: {"x-callbridge-reason": "the request breaks')
    body = json.loads("\n".join(lines[lines.index("  body:") + 1 :]))
    assert body["phones"] == [
        {"phone": "+7912***0070", "external_id": "dl-broken-lead-0", "add_data": {"name": "***"}}
    ]
    assert e164(70)[2:] not in shown.stdout

    unconfirmed = cli(environment, "dead-letters", "--drop", "dl-broken-1")
    assert unconfirmed.returncode == 1
    assert unconfirmed.stdout.splitlines()[-1] == "not dropped: add --yes to drop dl-broken-1"
    replayable = cli(environment, "dead-letters", "--drop", "big-1", "--yes")
    assert (replayable.returncode, replayable.stdout) == (
        1,
        "kept #2 id=big-1: intake would take it now: replay it with --replay\n",
    )
    dropped = cli(environment, "dead-letters", "--drop", "dl-broken-1", "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith(
        f"dropped #1 id=dl-broken-1 from {queues.dead}: intake would refuse it again: "
        "campaign.schedule.attempts: Must be"
    )
    left = cli(environment, "dead-letters").stdout
    assert left.startswith(f"{queues.dead}: 1 message(s)\n#1 id=big-1 ")
    gone = cli(environment, "dead-letters", "--show", "dl-broken-1")
    assert gone.returncode == 1
    assert gone.stderr.splitlines()[-1] == (
        f"callbridge dead-letters: no dead letter with id dl-broken-1 in {queues.dead}"
    )
    assert cli(environment, "dead-letters", "--yes").returncode == 2


# -- item 8: health hears of a platform down and of unknown outcomes ------------------------


def test_health_fails_while_the_platform_is_unreachable_for_longer_than_the_bound(
    worker_env, sqlite_url, start_worker, rabbitmq_url, queues, refused_port
):
    nowhere = f"http://127.0.0.1:{refused_port}"
    environment = worker_env(nowhere, sqlite_url)
    start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("down-1"))

    down = until(lambda: cli(environment, "health", "--max-platform-down", "1").returncode == 1)
    down = cli(environment, "health", "--max-platform-down", "1")
    assert re.search(
        r"platform unreachable for \d+ s from worker \d+ \(host .+\): no answer: no connection "
        r"to the platform: .+ \(limit 1 s\)",
        down.stdout,
    ), down.stdout
    assert cli(environment, "health").returncode == 0, "300 s is the default bound"


def test_health_fails_while_an_unknown_outcome_waits_longer_than_the_bound(
    env, make_sandbox, start_worker, rabbitmq_url, queues, results_reader
):
    environment = env(make_sandbox(create_faults=["500"]))
    start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("unknown-waits"))
    results_reader.wait_for(lambda events: events)

    assert "1 campaign(s) with an unknown outcome wait" in cli(environment, "health").stdout
    late = until(lambda: cli(environment, "health", "--max-unknown-age", "1").returncode == 1)
    late = cli(environment, "health", "--max-unknown-age", "1")
    assert re.search(
        r"unhealthy: 1 campaign\(s\) with an unknown outcome wait for `callbridge resolve`, the "
        r"oldest for \d+ s \(limit 1 s\)",
        late.stdout,
    ), late.stdout


# -- item 9: the campaign id of a resolve is checked on the sandbox ---------------------------


def test_resolve_checks_the_campaign_id_on_the_sandbox_and_says_when_it_cannot(
    env, make_sandbox, start_worker, rabbitmq_url, queues, results_reader, refused_port
):
    sandbox = make_sandbox(create_faults=["drop-after-create", "drop-after-create"])
    environment = env(sandbox)
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("check-1"))
    publish(rabbitmq_url, queues.requests, call_request("check-2"))
    results_reader.wait_for(lambda events: len(events) == 2)
    assert worker.terminate() == 0
    made = {campaign.id for campaign in sandbox.campaigns}
    assert {r.campaign_id for r in sandbox.requests if r.status is None} == made

    typo = max(made) + 100
    refused = cli(environment, "resolve", "check-1", "--campaign-id", str(typo))
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"callbridge resolve: campaign {typo} does not exist on the sandbox at {sandbox.url}; "
        "its log names the campaign of each call it answered"
    )
    first, second = sorted(made)
    checked = cli(environment, "resolve", "check-1", "--campaign-id", str(first))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"campaign {first} exists on the sandbox\n")

    elsewhere = {**environment, "IS74_API_URL": f"http://127.0.0.1:{refused_port}"}
    unchecked = cli(elsewhere, "resolve", "check-2", "--campaign-id", str(second))
    assert unchecked.returncode == 0, unchecked.stderr
    assert unchecked.stdout.startswith(
        f"could not check that campaign {second} exists: the platform has no lookup"
    )
    assert "request check-2: resolved as created" in unchecked.stdout


# -- items 7 and 10: log lines that keep ids, under one key and one logger tree --------------


def test_log_lines_keep_ids_greppable_and_every_logger_of_ours_is_under_callbridge(
    env, start_worker, rabbitmq_url, queues, results_reader
):
    environment = env()
    worker = start_worker(environment)
    publish(rabbitmq_url, queues.requests, call_request("demo-20261202-194102"))
    publish(rabbitmq_url, queues.requests, call_request("lead-89120000990", phones=1))
    results_reader.wait_for(lambda events: len(events) == 2)
    assert worker.terminate() == 0

    lines = [json.loads(line) for line in worker.log_text().splitlines()]
    about_demo = [line for line in lines if line.get("request_id") == "demo-20261202-194102"]
    assert [line["message"] for line in about_demo] == [
        "accepted",
        "sending",
        "created",
        "event published",
    ]
    assert any(line.get("request_id") == "lead-+7912***0990" for line in lines)
    assert all("event" not in line and line["message"] for line in lines)
    ours = {line["logger"] for line in lines if not line["logger"].startswith(NOISY_LOGGERS)}
    assert ours and all(name.startswith("callbridge.") for name in ours), ours
