"""The console end to end, in a real headless Chromium: a real `callbridge console` (waitress)
and a real worker on RabbitMQ and PostgreSQL, the sandbox as the platform. One deployment for
the module, one browser for the session; each test uses requests of its own.

What an operator does is done with clicks and typing; what it did is read where the CRM would
read it (the results queue) or where the operator would (the page)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from kombu import Connection

from adapters.topology import contract_queue
from sandbox import SandboxServer
from tests.builders import call_request, e164, phone, publish
from tests.plugins.browser import screenshot
from tests.plugins.console import OPERATOR, VIEWER, ConsoleUser
from tests.plugins.services import ROOT, QueueReader, Queues, WorkerProcess, database_url
from tests.waiting import eventually

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

PAGES_SEEN: list[str] = []  # the HTML of every page a test looked at, checked for phones last


@dataclasses.dataclass
class Deployment:
    url: str
    queues: Queues
    rabbitmq_url: str
    sandbox: SandboxServer
    worker: WorkerProcess
    database_url: str
    results: QueueReader
    shots: pathlib.Path
    token: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _database(postgres_server: str) -> Iterator[str]:
    name = f"callbridge_console_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _queues(rabbitmq_url: str) -> Iterator[Queues]:
    prefix = f"cbconsole.{uuid.uuid4().hex[:10]}"
    names = Queues(f"{prefix}.requests", f"{prefix}.results", f"{prefix}.dead")
    with Connection(rabbitmq_url) as connection:
        for name in dataclasses.astuple(names):
            contract_queue(name).bind(connection.default_channel).declare()
    try:
        yield names
    finally:
        with Connection(rabbitmq_url) as connection:
            for name in dataclasses.astuple(names):
                with contextlib.suppress(Exception):
                    connection.default_channel.queue_delete(name)


@pytest.fixture(scope="module")
def deployment(
    rabbitmq_server, postgres_server, console_users_file, tmp_path_factory
) -> Iterator[Deployment]:
    token = secrets.token_urlsafe(16)
    folder = tmp_path_factory.mktemp("console-e2e")
    with (
        _queues(rabbitmq_server) as queues,
        _database(postgres_server) as database,
        contextlib.ExitStack() as stack,
    ):
        sandbox = SandboxServer(token=token).start()
        stack.callback(sandbox.stop)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY")}
        env.update(
            queues.env(),
            BROKER_URL=rabbitmq_server,
            DATABASE_URL=database,
            IS74_API_URL=sandbox.url,
            IS74_API_TOKEN=token,
            HTTP_TIMEOUT_SECONDS="5",
            LOG_FORMAT="json",
            PYTHONUNBUFFERED="1",
            CONSOLE_USERS_FILE=str(console_users_file),
        )
        worker = WorkerProcess(env, folder / "worker.log")
        stack.callback(worker.stop)
        worker.wait_for_log('"worker started"')
        port = _free_port()
        log = stack.enter_context(open(folder / "console.log", "ab"))
        server = subprocess.Popen(
            [sys.executable, "-m", "worker", "console", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(server.wait, 10)
        stack.callback(server.terminate)
        eventually(
            lambda: (
                b'"console started"' in (folder / "console.log").read_bytes()
                or server.poll() is not None
            ),
            what="the console to start",
        )
        assert server.poll() is None, (folder / "console.log").read_text()
        yield Deployment(
            url=f"http://127.0.0.1:{port}",
            queues=queues,
            rabbitmq_url=rabbitmq_server,
            sandbox=sandbox,
            worker=worker,
            database_url=database,
            results=QueueReader(rabbitmq_server, queues.results),
            shots=folder,
            token=token,
        )


@pytest.fixture
def page(browser, deployment):
    """The browser, logged out, with a helper to open a page of the console."""
    browser.delete_all_cookies()
    return Browser(browser, deployment)


class Browser:
    def __init__(self, driver, deployment: Deployment):
        self.driver = driver
        self.deployment = deployment

    def open(self, path: str) -> str:
        self.driver.get(self.deployment.url + path)
        return self.seen()

    def seen(self) -> str:
        html = self.driver.page_source
        PAGES_SEEN.append(html)
        return html

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def click(self, css: str) -> str:
        """Click what ``css`` finds and wait for the page it leads to; that page."""
        return self._click(self.find(css))

    def _click(self, element) -> str:
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        element.click()
        WebDriverWait(self.driver, 30).until(expected_conditions.staleness_of(element))
        return self.seen()

    def click_xpath(self, xpath: str) -> str:
        from selenium.webdriver.common.by import By

        return self._click(self.driver.find_element(By.XPATH, xpath))

    def log_in(self, user: ConsoleUser) -> str:
        self.open("/login")
        self.find("input[name=name]").send_keys(user.name)
        self.find("input[name=password]").send_keys(user.password)
        return self.click("form button[type=submit]")

    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.deployment.url)

    def shot(self, name: str) -> None:
        screenshot(self.driver, name, self.deployment.shots)


def test_a_wrong_password_is_refused_and_opens_nothing(page) -> None:
    html = page.log_in(ConsoleUser(OPERATOR.name, "a wrong guess"))
    assert "Wrong name or password." in html
    assert page.path() == "/login"
    page.open("/dead-letters/")
    assert page.path().startswith("/login?next=/dead-letters/")


def test_an_operator_logs_in_and_sees_the_overview(page, deployment) -> None:
    publish(deployment.rabbitmq_url, deployment.queues.requests, call_request("e2e-overview"))
    deployment.results.wait_for(
        lambda events: any(e["request_id"] == "e2e-overview" for e in events)
    )
    html = page.log_in(OPERATOR)
    assert page.path() == "/"
    assert "ok: worker " in html, "the health verdict of a live worker"
    assert f"pid {deployment.worker.pid}" in html
    page.shot("overview")


def test_a_post_without_its_csrf_token_is_refused(page) -> None:
    page.log_in(OPERATOR)
    page.driver.execute_script("document.querySelector('form.who input[name=csrf_token]').remove()")
    assert "This form was not sent by this console" in page.click("form.who button")
    page.open("/")
    assert page.path() == "/", "the refused logout logged no one out"


def test_a_viewer_has_no_buttons(page, deployment) -> None:
    page.log_in(VIEWER)
    html = page.open("/dead-letters/")
    assert "Replay" not in html
    page.open("/dead-letters/drop?id=anything")
    assert "403" in page.seen()


def test_an_operator_replays_a_dead_letter_and_the_crm_gets_its_campaign(page, deployment) -> None:
    body = json.dumps(call_request("e2e-replayed"), ensure_ascii=False).encode()
    with Connection(deployment.rabbitmq_url) as connection:
        channel = connection.default_channel
        message = channel.prepare_message(
            body,
            0,
            "application/json",
            "utf-8",
            {
                "x-callbridge-reason": "message is 1519 bytes, over the limit of 1024",
                "x-callbridge-rejected-at": "2026-12-01T10:00:00Z",
                "x-original-queue": deployment.queues.requests,
            },
            {"message_id": "e2e-dead-1", "delivery_mode": 2},
        )
        channel.basic_publish(message, exchange="", routing_key=deployment.queues.dead)
    page.log_in(OPERATOR)
    listing = page.open("/dead-letters/")
    assert "e2e-dead-1" in listing and "over the limit of 1024" in listing
    page.shot("dead-letters")
    shown = page.click('a[href="/dead-letters/message?id=e2e-dead-1"]')
    assert "e2e-replayed" in shown
    done = page.click("div.actions button[type=submit]")
    assert "replayed #1 id=e2e-dead-1" in done
    created = deployment.results.wait_for(
        lambda events: any(
            e["request_id"] == "e2e-replayed" and e["type"] == "campaign.created" for e in events
        )
    )
    assert created


def test_an_operator_finds_a_request_by_external_id_and_reads_its_timeline(
    page, deployment
) -> None:
    publish(deployment.rabbitmq_url, deployment.queues.requests, call_request("e2e-find", phones=3))
    deployment.results.wait_for(lambda events: any(e["request_id"] == "e2e-find" for e in events))
    page.log_in(OPERATOR)
    page.open("/requests/")
    page.find("input[name=q]").send_keys("e2e-find-lead-1")
    listing = page.click("form.filters button[type=submit]")
    assert "e2e-find" in listing
    page.shot("requests")
    shown = page.click('#requests a[href="/request?id=e2e-find"]')
    assert "campaign.created" in shown and "received from the CRM" in shown
    assert "e2e-find-lead-1" in shown and e164(1)[:5] + "***" + e164(1)[-4:] in shown
    page.shot("request")


def test_an_operator_resolves_an_unknown_outcome_and_the_crm_gets_campaign_created(
    page, deployment
) -> None:
    deployment.sandbox.set_faults(create_faults=["500"])
    publish(deployment.rabbitmq_url, deployment.queues.requests, call_request("e2e-unknown"))
    deployment.results.wait_for(
        lambda events: any(
            e["request_id"] == "e2e-unknown" and e["type"] == "campaign.failed" for e in events
        )
    )
    page.log_in(OPERATOR)
    listing = page.open("/attention/")
    assert "e2e-unknown" in listing
    page.shot("attention")
    row = '//table[@id="unknown"]//tr[td/a[text()="e2e-unknown"]]'
    done = page.click_xpath(f'{row}//form[input[@name="how"][@value="resend"]]/button')
    assert "back to received" in done and ">done<" in done
    created = deployment.results.wait_for(
        lambda events: any(
            e["request_id"] == "e2e-unknown" and e["type"] == "campaign.created" for e in events
        )
    )
    assert created
    timeline = page.open("/request?id=e2e-unknown")
    assert "resolve.resend by olga (operator) from 127.0.0.1: done" in timeline


def test_no_page_shows_a_phone(page, deployment) -> None:
    """Last: every page the tests saw, and every page of the console now, has no phone."""
    page.log_in(OPERATOR)
    for path in ("/", "/requests/", "/attention/", "/dead-letters/", "/audit/"):
        page.open(path)
    everything = "\n".join(PAGES_SEEN)
    for n in range(10):
        assert phone(n) not in everything
        assert e164(n) not in everything
        assert e164(n)[1:] not in everything
    assert (
        deployment.sandbox.token not in everything if hasattr(deployment.sandbox, "token") else True
    )
