"""``callbridge demo``: the whole loop on a bare machine, printed as it happens.

It starts the sandbox platform and a real ``callbridge run`` as processes beside it, on the
embedded defaults (a file broker and a SQLite store under ``var/demo/``, made afresh; the
worker's and the sandbox's logs there too), sends a sample request whose calling window closes
about a minute from now, and prints every result event the CRM would receive:
``campaign.created`` at once, ``campaign.report`` when the window is over. Stopped with Ctrl-C,
it says where it was, and how to look at what it left.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from typing import IO
from zoneinfo import ZoneInfo

from adapters import broker
from adapters.config import BROKER, QUEUES, STORE, Settings, load_settings, where
from worker.commands.send import publish_request

USES = ()  # it makes its own, and names them
DEMO_DIR = pathlib.Path("var/demo")
DEMO_TOKEN = "demo-token"
FINAL_EVENTS = {"campaign.rejected", "campaign.failed", "campaign.report_failed"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phones", type=int, default=3, help="phones in the sample request")
    parser.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for each result event"
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    return run_demo(settings, phones=args.phones, timeout=args.timeout)


def run_demo(settings: Settings, *, phones: int, timeout: float) -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    stage = Stage("starting the sandbox platform")
    try:
        return _demo(settings, phones=phones, timeout=timeout, stage=stage)
    except KeyboardInterrupt:
        say(f"stopped by Ctrl-C while {stage.doing}; the worker and the sandbox are stopped")
        if stage.request_id:
            say(
                f"see what became of request {stage.request_id}: DATABASE_URL="
                f"sqlite:///{DEMO_DIR.absolute()}/callbridge.db callbridge status "
                f"{stage.request_id}"
            )
        raise


@dataclasses.dataclass
class Stage:
    """Where the demo is, to say so when it is stopped."""

    doing: str
    request_id: str | None = None


def _demo(settings: Settings, *, phones: int, timeout: float, stage: Stage) -> int:
    with open(DEMO_DIR / "sandbox.log", "wb") as sandbox_log:
        sandbox, sandbox_url = start_sandbox(
            DEMO_TOKEN, "--report-missing-every", "3", log=sandbox_log
        )
    env = _worker_env(settings, sandbox_url)
    demo_settings = load_settings(env)
    log_path = DEMO_DIR / "worker.log"
    say(f"sandbox platform listening on {sandbox_url}; its log: {DEMO_DIR / 'sandbox.log'}")
    say(f"using {where(demo_settings, (BROKER, STORE, QUEUES))}")
    try:
        with open(log_path, "wb") as log_file:
            stage.doing = "starting the worker"
            worker = subprocess.Popen(
                [sys.executable, "-m", "worker", "run"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            say(f"worker started (pid {worker.pid}); its log: {log_path}")
            try:
                stage.doing = "sending the sample request"
                request = sample_request(demo_settings, phones=phones)
                stage.request_id = request["request_id"]
                publish_request(demo_settings, json.dumps(request, ensure_ascii=False).encode())
                stage.doing = f"waiting for request {stage.request_id}'s campaign.created"
                window = request["campaign"]["schedule"]
                say(
                    f"sent request {request['request_id']} with {phones + 1} phones (one "
                    f"unreadable); calling window {window['start_time']}–{window['end_time']} "
                    f"{window['timezone']}, report right after it"
                )
                finished = _print_events(demo_settings, timeout=timeout, stage=stage)
            finally:
                worker.send_signal(signal.SIGTERM)
                code = worker.wait(40)
        campaigns = _campaigns(sandbox_url)
    finally:
        sandbox.terminate()
        sandbox.wait(10)
    say(f"worker stopped (exit code {code}); the sandbox holds {campaigns} campaign")
    return 0 if finished and code == 0 else 1


def start_sandbox(
    token: str, *options: str, log: IO[bytes] | int = subprocess.DEVNULL
) -> tuple[subprocess.Popen, str]:
    """``python -m sandbox`` on a free port, its log of calls to ``log``; the process and the
    URL it announced."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", *options],
        env={**os.environ, "IS74_API_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line = process.stdout.readline()  # "is74 sandbox listening on http://127.0.0.1:PORT (...)"
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"the sandbox platform did not start: {line!r}")
    return process, line.split("listening on ", 1)[1].split()[0]


def _campaigns(sandbox_url: str) -> int:
    with urllib.request.urlopen(f"{sandbox_url}/_sandbox/campaigns", timeout=10) as answer:
        return len(json.load(answer))


def sample_request(settings: Settings, *, phones: int, minutes: int = 1) -> dict:
    """A request like a CRM's, its window ending ``minutes`` from now (at a whole minute)."""
    zone = ZoneInfo(settings.campaign_timezone)
    now = dt.datetime.now(zone)
    end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=minutes + 1)
    start = max(end - dt.timedelta(minutes=minutes + 1), end.replace(hour=0, minute=0))
    if start >= end:  # the window would start at midnight: wait for it
        time.sleep(61 - now.second)
        return sample_request(settings, phones=phones, minutes=minutes)
    return {
        "request_id": f"demo-{now:%Y%m%d-%H%M%S}",
        "campaign": {
            "project_id": 1,
            "scenario_id": 951,
            "start_block_id": 10,
            "phone_id": 5,
            "name": "Подтверждение записи (demo)",
            "schedule": {
                "date": end.date().isoformat(),
                "start_time": start.strftime("%H:%M"),
                "end_time": end.strftime("%H:%M"),
                "attempts": 2,
                "interval": 5,
                "timezone": settings.campaign_timezone,
            },
        },
        "phones": [
            {
                "phone": f"+7 912 000-00-{n:02d}",
                "external_id": f"lead-{n}",
                "add_data": {"name": f"Клиент {n}"},
            }
            for n in range(phones)
        ]
        + [{"phone": "12-34", "external_id": "lead-unreadable"}],
        "report": {"delay_minutes": 0},
    }


def _print_events(settings: Settings, *, timeout: float, stage: Stage) -> bool:
    """Print result events until the request's story is over; False on a timeout.

    ``timeout`` counts from the send, and again from the report's due time.
    """
    deadline = time.monotonic() + timeout
    with broker.connect(settings) as connection:
        queue = connection.SimpleQueue(settings.call_results_queue)
        try:
            while True:
                try:
                    message = queue.get(block=True, timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    say("no event in time; giving up (see the worker's log)")
                    return False
                message.ack()
                event = json.loads(message.body)
                say(f"event {event['type']}:\n{json.dumps(event, ensure_ascii=False, indent=2)}")
                last_part = event["type"] == "campaign.report" and event["part"] == event["parts"]
                if event["type"] in FINAL_EVENTS or last_part:
                    return True
                if event["type"] == "campaign.created":
                    due = dt.datetime.fromisoformat(event["report_due_at"])
                    wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
                    deadline = time.monotonic() + max(0.0, wait) + timeout
                    say(f"waiting for the report, due at {event['report_due_at']} …")
                    stage.doing = f"waiting for the report, due at {event['report_due_at']}"
        finally:
            queue.close()


def _worker_env(settings: Settings, api_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "BROKER_URL": f"filesystem:///{DEMO_DIR}/broker",
        "DATABASE_URL": f"sqlite:///{DEMO_DIR}/callbridge.db",
        "IS74_API_URL": api_url,
        "IS74_API_TOKEN": DEMO_TOKEN,
        "SENTRY_DSN": "",
        "CALL_REQUESTS_QUEUE": settings.call_requests_queue,
        "CALL_RESULTS_QUEUE": settings.call_results_queue,
        "DEAD_LETTER_QUEUE": settings.dead_letter_queue,
        # The sample's window is the next minute or two, whatever the hour the demo runs at.
        "CALLING_HOURS": "off",
    }


def say(line: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {line}", flush=True)
