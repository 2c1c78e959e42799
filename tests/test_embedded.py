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
from collections.abc import Iterator

import pytest

from tests.builders import call_request
from tests.plugins.services import ROOT, callbridge
from tests.waiting import eventually


@pytest.fixture
def embedded_env(sandbox, sandbox_token) -> dict[str, str]:
    """The machine's environment with no broker or database set: the defaults apply."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"BROKER_URL", "DATABASE_URL"} and not key.startswith("SENTRY")
    }
    env.update(IS74_API_URL=sandbox.url, IS74_API_TOKEN=sandbox_token, PYTHONPATH=str(ROOT))
    return env


@pytest.fixture
def background_worker(tmp_path: pathlib.Path, embedded_env) -> Iterator[subprocess.Popen]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"],
        cwd=tmp_path,
        env=embedded_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    yield worker
    if worker.poll() is None:
        worker.kill()
        worker.wait(10)


def test_run_send_and_status_work_with_no_services(
    tmp_path, sandbox, embedded_env, background_worker
):
    request = tmp_path / "request.json"
    request.write_text(json.dumps(call_request("embedded-1"), ensure_ascii=False))
    sent = callbridge("send", str(request), cwd=tmp_path, env=embedded_env)
    assert sent.returncode == 0, sent.stderr
    assert "published request embedded-1" in sent.stdout

    def published() -> subprocess.CompletedProcess | None:
        status = callbridge("status", "embedded-1", cwd=tmp_path, env=embedded_env)
        shown = status.stdout
        return status if "published" in shown and "NOT published" not in shown else None

    status = eventually(published, interval=0.2, what="embedded-1's events published")
    assert "state:           created" in status.stdout, status.stdout
    assert "embedded-1:campaign.created" in status.stdout
    assert len(sandbox.campaigns) == 1
    assert (tmp_path / "var" / "callbridge.db").exists()
    assert (tmp_path / "var" / "broker").is_dir()

    background_worker.terminate()
    output = background_worker.communicate(timeout=40)[0].decode()
    assert background_worker.returncode == 0, output


def test_a_second_worker_on_one_sqlite_file_is_refused(tmp_path, embedded_env, background_worker):
    eventually(
        lambda: (tmp_path / "var" / "callbridge.db.lock").exists(),
        what="the first worker's lock file",
    )
    second = callbridge("run", cwd=tmp_path, env=embedded_env)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1
    assert "SQLite serves one worker process" in second.stderr
