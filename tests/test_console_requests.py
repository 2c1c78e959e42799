"""The requests list, a request's page and the needs-attention page, through Flask's test
client, over requests that went through intake and the real steps against the sandbox."""

from __future__ import annotations

import datetime as dt
import html
import json

import pytest

from adapters.broker import Delivery
from adapters.config import load_settings
from adapters.platform_client import PlatformClient
from adapters.store import State
from handlers.accept import accept_batch
from handlers.context import StepContext
from handlers.create import create_next
from handlers.report import report_next
from tests.builders import call_request, e164, phone
from tests.plugins.console import OPERATOR, VIEWER, post_form
from tests.plugins.services import as_if_due
from tests.test_console_pages import queued


@pytest.fixture
def deployment(make_console, sandbox, sandbox_token, tmp_path):
    """The console over a SQLite store and the embedded broker, the sandbox as the platform."""
    environment = {
        "BROKER_URL": f"filesystem:///{tmp_path / 'broker'}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'callbridge.db'}",
        "IS74_API_URL": sandbox.url,
        "IS74_API_TOKEN": sandbox_token,
        "HTTP_TIMEOUT_SECONDS": "5",
        "REPORT_RETRY_HOURS": "0.00001",
    }
    console = make_console(**environment)
    settings = load_settings(environment)
    platform = PlatformClient(settings)
    owner = console.store.register_worker(hostname="test", pid=1)
    console.steps = StepContext(settings, console.store, platform, owner=owner)
    console.environment = environment
    yield console
    platform.close()


def take_in(console, *bodies: dict) -> None:
    """Intake, as the worker's consumer hands it a batch of messages."""
    deliveries = [
        Delivery(
            body=json.dumps(body, ensure_ascii=False).encode(),
            content_type="application/json",
            message_id=body.get("request_id"),
        )
        for body in bodies
    ]
    accept_batch(deliveries, settings=console.steps.settings, store=console.store)


def create_all(console) -> None:
    while create_next(console.steps):
        pass


def campaign_of(console, request_id: str):
    (campaign,) = console.store.campaigns_of(request_id)
    return campaign


def rows(html: str) -> list[str]:
    """The request ids of a requests page, in order."""
    table = html.split('id="requests"')[1].split("</table>")[0]
    return [part.split('"')[0] for part in table.split('href="/request?id=')[1:]]


def test_the_list_pages_by_key_newest_first_and_back(deployment) -> None:
    take_in(deployment, *(call_request(f"page-{n:03d}") for n in range(120)))
    client = deployment.client(VIEWER)
    pages = [client.get("/requests/").get_data(as_text=True)]
    while "Older →" in pages[-1]:
        pages.append(client.get(_link(pages[-1], "Older →")).get_data(as_text=True))
    listed = [rows(page) for page in pages]
    assert [len(ids) for ids in listed] == [50, 50, 20]
    assert [id_ for ids in listed for id_ in ids] == [f"page-{n:03d}" for n in reversed(range(120))]
    back = client.get(_link(pages[2], "← Newer")).get_data(as_text=True)
    assert rows(back) == listed[1]
    assert "Newest" in back
    assert client.get("/requests/?after=not-a-key").status_code == 400


def _link(html: str, label: str) -> str:
    return html.split(f'">{label}</a>')[0].rsplit('href="', 1)[1].replace("&amp;", "&")


def test_the_list_filters_by_state_project_and_day_and_finds_by_any_id(deployment) -> None:
    take_in(
        deployment,
        call_request("filter-a", project_id=7),
        call_request("filter-b", project_id=8, phones=3),
        {"request_id": "filter-bad"},
    )
    create_all(deployment)
    client = deployment.client(VIEWER)
    assert rows(client.get("/requests/?project=7").get_data(True)) == ["filter-a"]
    assert rows(client.get("/requests/?state=rejected").get_data(True)) == ["filter-bad"]
    today = dt.datetime.now(dt.UTC).date()
    assert len(rows(client.get(f"/requests/?from={today}&to={today}").get_data(True))) == 3
    yesterday = today - dt.timedelta(days=1)
    assert rows(client.get(f"/requests/?to={yesterday}").get_data(True)) == []
    assert rows(client.get("/requests/?q=filter-b-lead-2").get_data(True)) == ["filter-b"]
    assert rows(client.get("/requests/?q=filter-a").get_data(True)) == ["filter-a"]
    campaign = campaign_of(deployment, "filter-b").campaign_id
    assert rows(client.get(f"/requests/?q={campaign}").get_data(True)) == ["filter-b"]
    nothing = client.get("/requests/?q=nobody-at-all").get_data(True)
    assert rows(nothing) == [] and "No request is named nobody-at-all" in nothing
    assert client.get("/requests/?state=lost").status_code == 400
    assert client.get("/requests/?from=yesterday").status_code == 400


def test_a_request_shows_its_timeline_phones_masked_and_events(deployment) -> None:
    body = call_request("shown-1", phones=2)
    body["phones"].append({"phone": "8 (912) 000-11-2", "external_id": "shown-1-bad"})
    take_in(deployment, body)
    create_all(deployment)
    client = deployment.client(VIEWER)
    page = client.get("/request?id=shown-1").get_data(as_text=True)
    assert "received from the CRM" in page
    assert "create campaign, try 1: created, campaign id " in page
    assert "campaign.created → crm.call_results" in page
    assert "+7912***0001" in page and "shown-1-lead-1" in page
    assert "shown-1-bad" in page and "invalid phone number" in page
    event = html.unescape(client.get("/event?id=shown-1:campaign.created").get_data(True))
    assert '"phones_accepted": 2' in event and "shown-1-bad" in event
    for n in range(2):
        assert phone(n) not in page + event and e164(n) not in page + event
    assert "8 (912) 000-11-2" not in page + event
    assert client.get("/request?id=nobody").status_code == 404


def test_an_unknown_outcome_is_resolved_as_created_and_its_event_published(
    deployment, sandbox
) -> None:
    sandbox.set_faults(create_faults=["drop-after-create"])
    take_in(deployment, call_request("lost-1"))
    create_all(deployment)
    (made,) = sandbox.campaigns
    client = deployment.client(OPERATOR)
    attention = client.get("/attention/").get_data(as_text=True)
    assert "lost-1" in attention and "Send it again" in attention
    done = post_form(
        client,
        "/attention/",
        "/attention/resolve",
        request_id="lost-1",
        group="1",
        how="created",
        campaign_id=str(made.id),
    )
    entry = client.get(done.headers["Location"]).get_data(as_text=True)
    assert f"resolved as created, campaign {made.id}" in entry and ">done<" in entry
    assert deployment.store.get_request("lost-1").state == State.CREATED
    published = [json.loads(b) for b in queued(deployment.environment, "call_results_queue")]
    assert ("campaign.created", made.id) in [(e["type"], e.get("campaign_id")) for e in published]
    again = post_form(
        client, "/attention/", "/attention/resolve", request_id="lost-1", group="1", how="resend"
    )
    refused = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "only a failed campaign whose outcome is unknown can be resolved" in refused
    timeline = client.get("/request?id=lost-1").get_data(as_text=True)
    assert "resolve.created by olga (operator) from 127.0.0.1: done" in timeline


def test_a_resend_goes_back_to_a_worker_and_a_viewer_cannot(deployment, sandbox) -> None:
    sandbox.set_faults(create_faults=["500"])
    take_in(deployment, call_request("again-1"))
    create_all(deployment)
    viewer = deployment.client(VIEWER)
    listed = viewer.get("/attention/").get_data(as_text=True)
    assert "again-1" in listed and "<button" not in listed.split("<main>")[1]
    assert (
        post_form(
            viewer, "/", "/attention/resolve", request_id="again-1", group="1", how="resend"
        ).status_code
        == 403
    )
    operator = deployment.client(OPERATOR)
    post_form(
        operator, "/attention/", "/attention/resolve", request_id="again-1", group="1", how="resend"
    )
    assert campaign_of(deployment, "again-1").state == State.RECEIVED
    create_all(deployment)
    assert campaign_of(deployment, "again-1").state == State.CREATED
    assert deployment.store.get_request("again-1").state == State.CREATED


def test_a_report_that_failed_is_fetched_now(deployment, sandbox) -> None:
    take_in(deployment, call_request("late-1"))
    create_all(deployment)
    as_if_due(deployment.environment["DATABASE_URL"], "late-1", window_ended_ago=dt.timedelta(1))
    sandbox.set_faults(report_faults=["500"] * 50)
    while campaign_of(deployment, "late-1").state != State.REPORT_FAILED:
        as_if_due(deployment.environment["DATABASE_URL"], "late-1")
        report_next(deployment.steps)
    sandbox.set_faults(report_faults=[])
    client = deployment.client(OPERATOR)
    assert "Fetch report now" in client.get("/attention/").get_data(as_text=True)
    timeline = client.get("/request?id=late-1").get_data(as_text=True)
    assert "fetch report, try 1: report_failed, HTTP 500" in timeline
    overview = client.get("/").get_data(as_text=True)
    assert "report_failed 1" in overview and "created 1" in overview
    campaign = campaign_of(deployment, "late-1").campaign_id
    done = post_form(client, "/attention/", "/attention/report", campaign_id=str(campaign))
    entry = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "campaign.report part(s)" in entry and ">done<" in entry
    assert campaign_of(deployment, "late-1").state == State.REPORTED
    timeline = client.get("/request?id=late-1").get_data(as_text=True)
    assert ": reported, HTTP 200" in timeline and "report.fetch by olga (operator)" in timeline


def test_events_the_relay_set_aside_are_shown_with_why(deployment) -> None:
    take_in(deployment, call_request("aside-1"))
    create_all(deployment)
    with deployment.store.pending_events(10) as (batch, settlement):
        (pending,) = [p for p in batch if p.event.request_id == "aside-1"]
        settlement.set_aside[pending.id] = "no queue named 'crm.gone' took it"
    page = deployment.client(VIEWER).get("/attention/").get_data(as_text=True)
    table = page.split('id="set-aside"')[1]
    assert "aside-1:campaign.created" in table and "no queue named &#39;crm.gone&#39;" in table
