"""The embedded defaults: a laptop with nothing installed runs the whole loop.

No RabbitMQ and no PostgreSQL here: the file broker and SQLite under a working directory of
the test's own, the way `callbridge run` and `callbridge send` use them out of the box.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

from tests.builders import call_request
from tests.plugins.services import ROOT


def callbridge(*args: str, cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_send_and_status_work_with_no_services(tmp_path, sandbox, sandbox_token):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BROKER_URL", "DATABASE_URL"} and not key.startswith("SENTRY")
    }
    env.update(IS74_API_URL=sandbox.url, IS74_API_TOKEN=sandbox_token, PYTHONUNBUFFERED="1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        request = tmp_path / "request.json"
        request.write_text(json.dumps(call_request("embedded-1"), ensure_ascii=False))
        sent = callbridge("send", str(request), cwd=tmp_path, env=env)
        assert sent.returncode == 0, sent.stderr
        assert "published request embedded-1" in sent.stdout

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = callbridge("status", "embedded-1", cwd=tmp_path, env=env)
            if "published" in status.stdout and "NOT published" not in status.stdout:
                break
            time.sleep(0.5)
        assert "state:           created" in status.stdout, status.stdout
        assert "embedded-1:campaign.created" in status.stdout
        assert len(sandbox.campaigns) == 1
        assert (tmp_path / "var" / "callbridge.db").exists()
        assert (tmp_path / "var" / "broker").is_dir()
    finally:
        worker.terminate()
        output = worker.communicate(timeout=40)[0].decode()
    assert worker.returncode == 0, output


def test_a_second_worker_on_one_sqlite_file_is_refused(tmp_path, sandbox, sandbox_token):
    env = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY")}
    env.update(
        IS74_API_URL=sandbox.url,
        IS74_API_TOKEN=sandbox_token,
        BROKER_URL="filesystem:///var/broker",
        DATABASE_URL="sqlite:///var/cb.db",
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        second = callbridge("run", cwd=tmp_path, env=env)
        assert second.returncode == 2
        assert "SQLite serves one worker process" in second.stderr
    finally:
        first.terminate()
        first.wait(40)
