"""Settings: every bad value is refused with its variable named, and the README lists them all."""

from __future__ import annotations

import pytest

from adapters.config import DOCUMENTED_VARIABLES, ConfigError, load_settings
from tests.plugins.services import ROOT


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load_settings({})
    assert settings.broker_url == "filesystem:///var/broker"
    assert settings.database_url == "sqlite:///var/callbridge.db"
    assert settings.call_requests_queue == "crm.call_requests"
    assert settings.call_results_queue == "crm.call_results"
    assert settings.dead_letter_queue == "crm.call_requests.dead"
    assert settings.campaign_timezone == "Asia/Yekaterinburg"
    assert settings.report_delay_minutes == 15
    assert settings.max_phones_per_request == 50_000
    assert settings.report_event_max_bytes == 4 * 1024 * 1024
    assert settings.retry_max_minutes == 60
    assert settings.report_retry_hours == 24
    assert settings.http_concurrency == 4
    assert (settings.max_deliveries, settings.max_publish_refusals) == (5, 10)
    assert settings.broker_heartbeat_seconds == 30
    assert settings.auth_header_value is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HTTP_CONCURRENCY", "lots"),
        ("HTTP_CONCURRENCY", "0"),
        ("HTTP_TIMEOUT_SECONDS", "-1"),
        ("HTTP_TIMEOUT_SECONDS", "soon"),
        ("RETRY_MAX_MINUTES", "0"),
        ("REPORT_DELAY_MINUTES", "-5"),
        ("MAX_PHONES_PER_REQUEST", "0"),
        ("CAMPAIGN_TIMEZONE", "Mars/Olympus"),
        ("CAMPAIGN_TIMEZONE", "America"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("METRICS_PORT", "70000"),
        ("IS74_API_URL", "ai-assistant.is74.ru"),
        ("CALL_RESULTS_QUEUE", " "),
        ("IS74_API_TOKEN", ""),
        ("MAX_DELIVERIES", "0"),
        ("MAX_PUBLISH_REFUSALS", "0"),
        ("BROKER_HEARTBEAT_SECONDS", "-1"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}"):
        load_settings({variable: value})


def test_a_word_where_a_number_belongs_says_so() -> None:
    with pytest.raises(ConfigError, match="HTTP_TIMEOUT_SECONDS='soon': must be a number"):
        load_settings({"HTTP_TIMEOUT_SECONDS": "soon"})


def test_a_secret_is_never_echoed_in_the_error() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings({"DATABASE_URL": " ", "IS74_API_TOKEN": "s3cr3t"})
    assert "s3cr3t" not in str(excinfo.value)


def test_the_token_makes_a_bearer_header() -> None:
    assert load_settings({"IS74_API_TOKEN": "abc"}).auth_header_value == "Bearer abc"


def test_the_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in DOCUMENTED_VARIABLES if f"`{name}`" not in readme]
    assert not missing
