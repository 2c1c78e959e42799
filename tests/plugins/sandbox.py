"""Fixtures that run the sandbox platform over real HTTP, one server per test on a free port."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.config import Settings, load_settings
from sandbox import SandboxServer


@pytest.fixture
def sandbox_token() -> str:
    """A fresh token per test, so a test passing by a leaked constant cannot happen."""
    return secrets.token_urlsafe(16)


@pytest.fixture
def make_sandbox(sandbox_token: str) -> Iterator[Callable[..., SandboxServer]]:
    """``make_sandbox(**options)``: a started sandbox (token ``sandbox_token`` unless given)."""
    started: list[SandboxServer] = []

    def make(**options: Any) -> SandboxServer:
        options.setdefault("token", sandbox_token)
        server = SandboxServer(**options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A started sandbox with no faults."""
    return make_sandbox()


@pytest.fixture
def sandbox_settings(sandbox: SandboxServer, sandbox_token: str) -> Settings:
    """Default settings pointed at ``sandbox`` with its token, and a short HTTP timeout; calling
    hours off, as for ``worker_env``'s workers."""
    return load_settings(
        {
            "IS74_API_URL": sandbox.url,
            "IS74_API_TOKEN": sandbox_token,
            "HTTP_TIMEOUT_SECONDS": "5",
            "CALLING_HOURS": "off",
        }
    )


def documented_campaign_body(*phones: str, project_id: int = 1) -> dict:
    """A ``POST /api/campaigns`` body exactly as the platform's documentation describes it."""
    return {
        "campaign": {
            "project_id": project_id,
            "name": "Обзвон клиентов",
            "description": "Обзвон клиентов для опроса удовлетворенности",
            "state": "Создано",
            "start_block_id": 10,
            "schedule": {
                "date": "2026-12-01",
                "start_time": "09:00",
                "end_time": "17:00",
                "periods": {"id": 1, "title": "Однократно"},
                "attempts": {"id": 3, "title": "3"},
                "interval": "5",
            },
            "phone_id": 5,
        },
        "phones": [
            {"phone": phone, "add_data": {"name": "Иванов Иван", "time": "10:00", "n": 1}}
            for phone in phones or ("+79123456789",)
        ],
    }


def documented_report_query(campaign_id: int) -> dict:
    """An analytics body for ``campaign_id`` as the documentation's example has it."""
    return {
        "analytics_filter": {
            "scenario_id": 951,
            "start_block_id": 10,
            "outgoing_campaign_id": campaign_id,
            "date_start": "2026-12-01T04:00:00.000Z",
            "date_end": "2026-12-01T12:15:00.000Z",
        },
        "columns": [
            {
                "id": 1,
                "name": "phone_number",
                "display_name": "Phone Number",
                "column_type": "field",
                "data_type": "number",
                "filter_type": "contains",
                "filter_value": "79999999999",
                "sorting": "asc",
            }
        ],
    }
