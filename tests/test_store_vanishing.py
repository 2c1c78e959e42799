"""A SQLite store cannot vanish unnoticed, and its single-worker lock is the file's own: real
workers on the real RabbitMQ, the store's folder removed under them, reached through symlinks,
or beside another database."""

from __future__ import annotations

import collections
import pathlib
import shutil

import pytest

from tests.builders import call_request, publish
from tests.plugins.services import QueueReader, callbridge, wait_until_at_rest

pytestmark = [pytest.mark.rabbitmq]

EXIT_STORE_GONE = 4


def sqlite_at(path: pathlib.Path) -> str:
    return f"sqlite:///{path}"


def created_ids(reader: QueueReader, ids: list[str], timeout: float = 30) -> None:
    events = reader.wait_for(
        lambda events: {e["request_id"] for e in events} >= set(ids), timeout=timeout
    )
    assert {e["type"] for e in events if e["request_id"] in ids} == {"campaign.created"}


def campaigns_per_request(sandbox) -> collections.Counter:
    return collections.Counter(
        campaign.body["campaign"]["name"].removeprefix("Store ") for campaign in sandbox.campaigns
    )


def requests_named(*ids: str) -> list[dict]:
    return [call_request(request_id, name=f"Store {request_id}") for request_id in ids]


def test_a_removed_store_folder_stops_the_worker_and_nothing_is_created_twice(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, tmp_path
):
    folder = tmp_path / "store"
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, sqlite_at(folder / "cb.db"))
    worker = start_worker(env)
    before = ["gone-before-0", "gone-before-1"]
    for body in requests_named(*before):
        publish(rabbitmq_url, queues.requests, body)
    created_ids(results_reader, before)
    assert callbridge("health", env=env).returncode == 0

    shutil.rmtree(folder)

    assert worker.process.wait(15) == EXIT_STORE_GONE
    lines = [line for line in worker.log_text().splitlines() if '"CRITICAL"' in line]
    assert len(lines) == 1 and f"the SQLite store {folder / 'cb.db'} is gone" in lines[0]
    health = callbridge("health", env=env)
    assert health.returncode == 1
    assert health.stdout.startswith(f"unhealthy: DATABASE_URL: no store at {folder / 'cb.db'}")
    assert not folder.exists(), "health must not make an empty store where the old one was"

    after = ["gone-after-0", "gone-after-1"]
    for body in requests_named(*after):
        publish(rabbitmq_url, queues.requests, body)
    start_worker(env)  # on a new, empty store: the operator's choice
    created_ids(results_reader, after)
    wait_until_at_rest(env["DATABASE_URL"])
    assert campaigns_per_request(sandbox) == dict.fromkeys(before + after, 1)
    assert callbridge("health", env=env).returncode == 0


def test_a_second_worker_through_a_symlink_is_refused(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, tmp_path
):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    sandbox = make_sandbox()
    env = worker_env(sandbox.url, sqlite_at(real / "cb.db"))
    start_worker(env)

    for alias in (tmp_path / "alias" / "cb.db", tmp_path / "cb-link.db"):
        if alias.parent == tmp_path:
            alias.symlink_to(real / "cb.db")
        second = callbridge("run", env={**env, "DATABASE_URL": sqlite_at(alias)}, timeout=30)
        assert second.returncode == 2, second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert f"another callbridge worker is running on {real / 'cb.db'} (through {alias})" in (
            line
        )

    ids = ["alias-0", "alias-1"]
    for body in requests_named(*ids):
        publish(rabbitmq_url, queues.requests, body)
    created_ids(results_reader, ids)
    assert callbridge("health", env=env).returncode == 0


def test_two_databases_in_one_folder_do_not_block_each_other(
    make_sandbox, worker_env, start_worker, rabbitmq_url, queues, results_reader, tmp_path
):
    sandbox = make_sandbox()
    envs = [worker_env(sandbox.url, sqlite_at(tmp_path / name)) for name in ("cb.db", "cb.sqlite")]
    workers = [start_worker(env) for env in envs]

    ids = [f"neighbour-{n}" for n in range(6)]
    for body in requests_named(*ids):
        publish(rabbitmq_url, queues.requests, body)
    created_ids(results_reader, ids)
    assert all(worker.process.poll() is None for worker in workers)
    assert campaigns_per_request(sandbox) == dict.fromkeys(ids, 1)
    for env in envs:
        assert callbridge("health", env=env).returncode == 0
