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
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}"):
        load_settings({variable: value})


def test_a_word_where_a_number_belongs_says_so() -> None:
    with pytest.raises(ConfigError, match="HTTP_TIMEOUT_SECONDS='soon': must be a number"):
        load_settings({"HTTP_TIMEOUT_SECONDS": "soon"})


@pytest.mark.parametrize("variable", ["DATABASE_URL", "BROKER_URL"])
def test_a_variable_that_may_hold_a_secret_is_named_without_its_value(variable: str) -> None:
    """A URL holds its password: the error shows the variable and why, never what was set."""
    with pytest.raises(ConfigError) as excinfo:
        load_settings({variable: " \t "})
    assert str(excinfo.value) == f"{variable}=<hidden>: must not be empty"


def test_the_token_makes_a_bearer_header() -> None:
    assert load_settings({"IS74_API_TOKEN": "abc"}).auth_header_value == "Bearer abc"


def test_the_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in DOCUMENTED_VARIABLES if f"`{name}`" not in readme]
    assert not missing
