"""The SQLite worker's lock and its store's identity, on real files (the e2e tests in
``test_store_vanishing`` run the same through worker processes)."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from adapters.liveness import AnotherWorkerRunning, SqliteLiveness
from adapters.store import Store, open_store

ROOT = pathlib.Path(__file__).resolve().parents[1]


def store_at(path: pathlib.Path) -> Store:
    store = open_store(f"sqlite:///{path}")
    store.create_schema()
    return store


def hold_in_another_process(path: pathlib.Path) -> subprocess.Popen:
    """A process holding the worker lock of the store at ``path`` until its stdin closes
    (``flock`` locks of one process never conflict with each other)."""
    script = textwrap.dedent(f"""
        import sys
        from adapters.liveness import SqliteLiveness
        from adapters.store import open_store
        store = open_store({f"sqlite:///{path}"!r})
        store.create_schema()
        liveness = SqliteLiveness(store, 1)
        print("held", flush=True)
        sys.stdin.read()
    """)
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def holder():
    started: list[subprocess.Popen] = []

    def hold(path: pathlib.Path) -> None:
        started.append(hold_in_another_process(path))

    yield hold
    for process in started:
        process.stdin.close()
        process.wait(10)


def test_the_lock_is_the_real_files_whatever_path_reaches_it(tmp_path, holder) -> None:
    real = tmp_path / "real" / "cb.db"
    store_at(real)
    holder(real)
    (tmp_path / "dir-alias").symlink_to(real.parent, target_is_directory=True)
    (tmp_path / "file-alias.db").symlink_to(real)

    for alias in (real, tmp_path / "dir-alias" / "cb.db", tmp_path / "file-alias.db"):
        with pytest.raises(AnotherWorkerRunning, match=f"running on {real}"):
            SqliteLiveness(store_at(alias), 2)


def test_files_that_share_a_folder_and_a_name_do_not_share_a_lock(tmp_path, holder) -> None:
    holder(tmp_path / "cb.db")

    liveness = SqliteLiveness(store_at(tmp_path / "cb.sqlite"), 2)

    assert liveness.alive()
    liveness.close()
    assert sorted(path.name for path in tmp_path.glob("*.lock")) == ["cb.db.lock", "cb.sqlite.lock"]


def test_the_store_is_gone_once_its_file_or_folder_is_removed_or_replaced(tmp_path) -> None:
    folder = tmp_path / "store"
    liveness = SqliteLiveness(store_at(folder / "cb.db"), 1)
    assert liveness.store_gone() is None

    replacement = tmp_path / "other.db"
    store_at(replacement)
    os.replace(replacement, folder / "cb.db")
    replaced = f"the SQLite store {folder / 'cb.db'} was replaced by another file"
    assert liveness.store_gone() == replaced

    shutil.rmtree(folder)
    assert liveness.store_gone() == (
        f"the SQLite store {folder / 'cb.db'} is gone (its file or folder was removed)"
    )
    liveness.close()
