"""A RabbitMQ node of one test's own, to stop and start under a worker.

It runs from the machine's RabbitMQ installation under its own node name, on its own ports,
with its own data and log folders, Erlang cookie (a HOME of its own), configuration and no
plugins, so it neither sees nor disturbs the shared broker the other tests use. A start takes
a few seconds (an Erlang VM and the broker's database); a restart keeps the ports and the data,
so durable queues and persistent messages are there again, as on a production broker.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from kombu import Connection

from tests.plugins.services import missing_service
from tests.waiting import eventually

# Debian's own scripts, not the wrappers on PATH that switch to the rabbitmq user (and to its
# home, cookie and configuration).
DEBIAN_SCRIPTS = pathlib.Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0


def _script(name: str) -> str | None:
    own = DEBIAN_SCRIPTS / name
    return str(own) if own.exists() else shutil.which(name)


def _unused_port(besides: int = 0) -> int:
    """A port below the kernel's range for outgoing connections, so that none of the many
    connections the tests open takes it while the node is down for a restart."""
    first_ephemeral = int(
        pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
    )
    while True:
        port = random.randrange(10_000, first_ephemeral)
        if port == besides:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


class PrivateRabbitMQ:
    """One RabbitMQ node in ``folder``: ``start()``, ``stop()``, ``restart()``, ``url``."""

    def __init__(self, folder: pathlib.Path, server: str, ctl: str):
        self.folder = folder
        self.node = f"cbtest-{uuid.uuid4().hex[:8]}@localhost"
        self.port = _unused_port()
        self.dist_port = _unused_port(besides=self.port)
        self._server = server
        self._ctl = ctl
        self._process: subprocess.Popen | None = None
        (folder / "enabled_plugins").write_text("[].\n")
        (folder / "rabbitmq-env.conf").write_text("")
        (folder / "rabbitmq.conf").write_text("")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        folder = self.folder
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(folder),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(folder / "plugins-expand"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
        }

    def _output(self) -> str:
        return (self.folder / "server.out").read_text(errors="replace")[-3000:]

    def start(self) -> None:
        """Start the node and return once it takes AMQP logins."""
        with open(self.folder / "server.out", "ab") as out:
            self._process = subprocess.Popen(
                [self._server],
                env=self._env(),
                cwd=self.folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its Erlang VM too can be killed as a group
            )

        def ready() -> bool:
            if self._process.poll() is not None:
                raise AssertionError(f"the private RabbitMQ node exited:\n{self._output()}")
            try:
                with Connection(self.url, connect_timeout=1) as connection:
                    connection.ensure_connection(max_retries=1)
            except Exception:  # not up yet
                return False
            return True

        eventually(
            ready,
            timeout=START_TIMEOUT_SECONDS,
            interval=0.2,
            what=lambda: f"the private RabbitMQ node to start:\n{self._output()}",
        )

    def stop(self) -> None:
        """Stop the node as an operator does (it closes every connection), and wait for it."""
        subprocess.run(
            [self._ctl, "-n", self.node, "-q", "stop"],
            env=self._env(),
            capture_output=True,
            timeout=STOP_TIMEOUT_SECONDS,
            check=True,
        )
        self._process.wait(STOP_TIMEOUT_SECONDS)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(10)


@pytest.fixture
def private_rabbitmq(tmp_path: pathlib.Path) -> Iterator[PrivateRabbitMQ]:
    """A started RabbitMQ node of this test's own (guest/guest on ``.url``)."""
    server, ctl = _script("rabbitmq-server"), _script("rabbitmqctl")
    if server is None or ctl is None:
        missing_service("RabbitMQ is not installed (no rabbitmq-server)")
    folder = tmp_path / "rabbitmq"
    folder.mkdir()
    node = PrivateRabbitMQ(folder, server, ctl)
    try:
        node.start()
        yield node
    finally:
        node.kill()
