"""Settings: every bad value is refused with its variable named, and the README lists them all."""

from __future__ import annotations

import pathlib

import pytest

from adapters.config import (
    BROKER,
    DOCUMENTED_VARIABLES,
    PLATFORM,
    QUEUES,
    STORE,
    ConfigError,
    load_settings,
    where,
)
from tests.plugins.services import ROOT


def test_the_defaults_are_the_documented_ones(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    # var/ under the current folder, made absolute once, so that every command can name it
    assert settings.broker_url == f"filesystem:///{tmp_path}/var/broker"
    assert settings.database_url == f"sqlite:///{tmp_path}/var/callbridge.db"
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
    assert settings.http_call_deadline_seconds == 60
    assert settings.platform_max_answer_bytes == 64 * 1024 * 1024
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
        ("IS74_API_TOKEN", "two\nlines"),
        ("IS74_API_TOKEN", "with space"),
        ("IS74_API_TOKEN", "tab\tinside"),
        ("IS74_API_TOKEN", "кириллица"),
        ("IS74_AUTH_HEADER", "Auth:orization"),
        ("IS74_AUTH_HEADER", "X Api Key"),
        ("HTTP_CALL_DEADLINE_SECONDS", "0"),
        ("PLATFORM_MAX_ANSWER_BYTES", "100"),
        ("MAX_DELIVERIES", "0"),
        ("MAX_PUBLISH_REFUSALS", "0"),
        ("BROKER_HEARTBEAT_SECONDS", "-1"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}"):
        load_settings({variable: value})


@pytest.mark.parametrize(
    ("url", "meant"),
    [
        (
            "postgresql://postgres@127.0.0.1:5432/db",
            "postgresql+psycopg://postgres@127.0.0.1:5432/db",
        ),
        ("postgres://u:pw@db.local/cb", "postgresql+psycopg://u:pw@db.local/cb"),
        ("postgresql+psycopg://u@h/cb", "postgresql+psycopg://u@h/cb"),
        ("sqlite:////srv/cb/callbridge.db", "sqlite:////srv/cb/callbridge.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
    ],
)
def test_a_postgresql_url_means_psycopg_3(url: str, meant: str) -> None:
    assert load_settings({"DATABASE_URL": url}).database_url == meant


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        {"DATABASE_URL": "sqlite:///data/cb.db", "BROKER_URL": "filesystem:///data/broker"}
    )
    assert settings.database_url == f"sqlite:///{tmp_path}/data/cb.db"
    assert pathlib.Path(settings.broker_url.removeprefix("filesystem:///")).is_absolute()


@pytest.mark.parametrize(
    ("variable", "url", "said"),
    [
        ("DATABASE_URL", "mysql://root:pw@db/cb", "'mysql' is not one"),
        ("DATABASE_URL", "postgresql+psycopg2://u:pw@h/cb", "'postgresql+psycopg2' is not one"),
        ("DATABASE_URL", "not a url", "must be sqlite:///PATH or postgresql://"),
        ("BROKER_URL", "rabbitmq://guest:pw@h//", "scheme 'rabbitmq' is not one"),
        ("BROKER_URL", "redis://h:6379/0", "scheme 'redis' is not one"),
        ("BROKER_URL", "127.0.0.1:5672", "it has no scheme"),
    ],
)
def test_a_url_callbridge_cannot_use_is_named_without_its_password(variable, url, said) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({variable: url})
    message = str(refused.value)
    assert message.startswith(f"{variable}=")
    assert said in message
    assert "pw" not in message


def test_where_names_each_part_without_a_secret() -> None:
    settings = load_settings(
        {
            "BROKER_URL": "amqp://crm:br0ker-pw@rabbit.local:5673/calls",
            "DATABASE_URL": "postgres://cb:db-pw@pg.local/callbridge",
            "IS74_API_URL": "https://ai-assistant.is74.ru",
            "IS74_API_TOKEN": "t0ken",
        }
    )
    assert where(settings, (BROKER, STORE, PLATFORM, QUEUES)) == (
        "broker RabbitMQ crm@rabbit.local:5673 vhost calls; "
        "store PostgreSQL cb@pg.local:5432/callbridge; "
        "platform https://ai-assistant.is74.ru; "
        "queues crm.call_requests → crm.call_results, dead letters crm.call_requests.dead"
    )
    assert where(
        load_settings({"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}), (BROKER,)
    ) == ("broker RabbitMQ guest@127.0.0.1:5672 vhost /")


def test_a_word_where_a_number_belongs_says_so() -> None:
    with pytest.raises(ConfigError, match="HTTP_TIMEOUT_SECONDS='soon': must be a number"):
        load_settings({"HTTP_TIMEOUT_SECONDS": "soon"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://crm:s3cret-pass@db.example:3306/calls"),
        ("BROKER_URL", "rabbitmq://crm:s3cret-pass@mq.example:5672//"),
        ("BROKER_URL", "amqp://crm:s3cret-pass@mq.example:notaport//"),
    ],
)
def test_a_url_is_named_without_its_password(variable: str, value: str) -> None:
    """A URL holds its password: the error shows the variable, the URL and why, never the
    password."""
    with pytest.raises(ConfigError) as excinfo:
        load_settings({variable: value})
    message = str(excinfo.value)
    assert message.startswith(f"{variable}='") and "crm:***@" in message
    assert "s3cret" not in message


def test_a_token_that_cannot_be_sent_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings({"IS74_API_TOKEN": "first-half\nsecond-half"})
    assert str(excinfo.value) == (
        "IS74_API_TOKEN=<hidden>: must be visible ASCII characters only, without spaces, tabs "
        "or line breaks"
    )


def test_a_token_read_from_a_file_loses_its_last_line_break() -> None:
    assert load_settings({"IS74_API_TOKEN": "abc-123\n"}).is74_api_token == "abc-123"


def test_the_token_makes_a_bearer_header() -> None:
    assert load_settings({"IS74_API_TOKEN": "abc"}).auth_header_value == "Bearer abc"


def test_the_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in DOCUMENTED_VARIABLES if f"`{name}`" not in readme]
    assert not missing
