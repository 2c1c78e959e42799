"""The operator's console under test: its users, the app over a test's store and broker, and
Flask test clients logged in as an operator or a viewer."""

from __future__ import annotations

import dataclasses
import pathlib
import re
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.config import load_settings
from adapters.store import Store, open_store
from console.app import create_app
from console.users import hash_password, read_users_file

OPERATOR_PASSWORD = "correct horse battery staple"
VIEWER_PASSWORD = "viewer sees but never acts"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass(frozen=True)
class ConsoleUser:
    name: str
    password: str


OPERATOR = ConsoleUser("olga", OPERATOR_PASSWORD)
VIEWER = ConsoleUser("victor", VIEWER_PASSWORD)


@pytest.fixture(scope="session")
def console_users_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A users file with an operator and a viewer (hashing is slow: once per session)."""
    path = tmp_path_factory.mktemp("console") / "users"
    path.write_text(
        "# name role hash\n"
        f"{OPERATOR.name} operator {hash_password(OPERATOR.password)}\n\n"
        f"{VIEWER.name} viewer {hash_password(VIEWER.password)}\n"
    )
    return path


def csrf_token(page: TestResponse) -> str:
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, "no CSRF token in the page"
    return found.group(1)


def log_in(client: FlaskClient, user: ConsoleUser) -> TestResponse:
    token = csrf_token(client.get("/login"))
    return client.post(
        "/login", data={"name": user.name, "password": user.password, "csrf_token": token}
    )


def post_form(client: FlaskClient, page_url: str, action: str, **fields: str) -> TestResponse:
    """Submit a form of ``page_url`` to ``action`` as the browser would: with its CSRF token."""
    token = csrf_token(client.get(page_url))
    return client.post(action, data={**fields, "csrf_token": token})


@dataclasses.dataclass
class ConsoleApp:
    app: Flask
    store: Store

    def client(self, user: ConsoleUser | None = None) -> FlaskClient:
        client = self.app.test_client()
        if user is not None:
            assert log_in(client, user).status_code == 302
        return client


@pytest.fixture
def make_console(console_users_file: pathlib.Path) -> Iterator[Callable[..., ConsoleApp]]:
    """``make_console(DATABASE_URL=…, **environment)``: the console app over that store."""
    stores: list[Store] = []

    def make(**environment: str) -> ConsoleApp:
        settings = load_settings({"CONSOLE_USERS_FILE": str(console_users_file), **environment})
        store = open_store(settings.database_url)
        store.create_schema()
        stores.append(store)
        app = create_app(settings, read_users_file(console_users_file), store)
        return ConsoleApp(app, store)

    yield make
    for store in stores:
        store.engine.dispose()
