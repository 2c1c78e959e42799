"""The machine a bench ran on, so that a figure is never read without it."""

from __future__ import annotations

import os
import pathlib
import platform

import psycopg
from kombu import Connection


def describe(broker_url: str, postgres_url: str) -> dict[str, str | int]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "memory_gib": round(_memory_kib() / 1024 / 1024, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "rabbitmq": _rabbitmq_version(broker_url),
        "postgresql": _postgres_version(postgres_url),
    }


def summary(machine: dict[str, str | int]) -> str:
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['os']}, Python {machine['python']}, RabbitMQ {machine['rabbitmq']}, "
        f"PostgreSQL {machine['postgresql']}"
    )


def _cpu_model() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _memory_kib() -> int:
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _rabbitmq_version(broker_url: str) -> str:
    with Connection(broker_url) as connection:
        connection.ensure_connection(max_retries=1)
        version = connection.connection.server_properties.get("version", "?")
    return version.decode() if isinstance(version, bytes) else str(version)


def _postgres_version(postgres_url: str) -> str:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0].split()[0]
