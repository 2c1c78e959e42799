"""Settings from environment variables, read and checked once at start.

Every setting is parsed here so that a bad value stops the worker before it touches the
broker, with one line that names the variable (``ConfigError``), instead of failing at the
first message that needs it. The two URLs are checked for what callbridge can talk to, and
made explicit: ``postgresql://`` and ``postgres://`` mean psycopg 3, and the relative paths of
the embedded defaults (``var/…``) are resolved against the current folder once, here, so that
every command can say which absolute path it uses.

``where`` names what a command uses (broker, store, platform, queues) for its first line,
never with a password or a token.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from schemas.calling_hours import DEFAULT_CALLING_HOURS, CallingHours, parse_calling_hours
from schemas.request import RequestRules
from schemas.zones import is_time_zone

DEFAULT_VAR_DIR = "var"
EMBEDDED_BROKER_SCHEME = "filesystem"
# kombu transports callbridge runs on: RabbitMQ, and the server-less file transport.
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", EMBEDDED_BROKER_SCHEME)
POSTGRES_DRIVER = "postgresql+psycopg"
# What DATABASE_URL may name, and the SQLAlchemy driver each one means.
DATABASE_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
}
_VISIBLE_ASCII = re.compile(r"[!-~]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# werkzeug's ``method$salt$hash``: scrypt (its default) or pbkdf2.
PASSWORD_HASH = re.compile(r"(?:scrypt|pbkdf2):[0-9a-z:]+\$[0-9A-Za-z]+\$[0-9a-f]{32,}")


class ConfigError(ValueError):
    """A setting has a value the worker cannot run with; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the worker is configured with; see the README's configuration table."""

    broker_url: str
    database_url: str
    is74_api_url: str
    is74_api_token: str | None
    is74_auth_header: str
    sentry_dsn: str | None
    sentry_environment: str | None
    call_requests_queue: str
    call_results_queue: str
    dead_letter_queue: str
    campaign_timezone: str
    platform_timezone: str
    calling_hours: CallingHours | None  # None: any hour
    report_delay_minutes: int
    report_retry_hours: float
    report_event_max_bytes: int
    report_phone_fields: tuple[str, ...]
    max_phones_per_request: int
    max_phones_per_campaign: int
    max_message_bytes: int
    http_timeout_seconds: float
    http_call_deadline_seconds: float
    platform_max_answer_bytes: int
    http_concurrency: int
    retry_max_minutes: float
    prefetch_count: int
    max_deliveries: int
    max_publish_refusals: int
    broker_heartbeat_seconds: int
    log_level: str
    log_format: str
    metrics_port: int | None
    console_password: str | None
    console_users_file: str | None
    console_secret_key: str | None
    console_https: bool
    console_trusted_proxy: str | None

    @property
    def auth_header_value(self) -> str | None:
        """The value of the auth header: ``Bearer <token>``, or None when no token is set."""
        return f"Bearer {self.is74_api_token}" if self.is74_api_token else None

    @property
    def request_rules(self) -> RequestRules:
        """The settings that the contract's schema applies to every request."""
        return RequestRules(
            max_phones=self.max_phones_per_request,
            default_timezone=self.campaign_timezone,
            default_report_delay_minutes=self.report_delay_minutes,
        )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _optional_text(value: str) -> str | None:
    return value.strip() or None


def _optional_token(value: str) -> str | None:
    """A secret sent in an HTTP header: visible ASCII only. Anything else (a line break, a
    space, a letter outside ASCII) cannot be sent, and an error naming the header would quote
    it; the whitespace around it (a file's last line break) is dropped, as for every setting."""
    token = value.strip()
    if not _VISIBLE_ASCII.fullmatch(token):
        raise ValueError(
            "must be visible ASCII characters only, without spaces, tabs or line breaks"
        )
    return token or None


def _header_name(value: str) -> str:
    name = value.strip()
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError("must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~")
    return name


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise ValueError(f"must be an integer >= {minimum}")
        return number

    return parse


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a number > 0")
    return number


def _timezone(value: str) -> str:
    if not is_time_zone(value):
        raise ValueError("must be an IANA time zone name such as Asia/Yekaterinburg")
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normalised = value.strip().lower()
        if normalised not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return normalised

    return parse


def _log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _field_list(value: str) -> tuple[str, ...]:
    fields = tuple(part.strip() for part in value.split(",") if part.strip())
    if not fields:
        raise ValueError("must name at least one field")
    return fields


def _optional_count(value: str) -> int | None:
    return _int_at_least(1)(value) if value.strip() else None


def _optional_port(value: str) -> int | None:
    if not value.strip():
        return None
    port = int(value)
    if not 0 < port < 65536:
        raise ValueError("must be a TCP port 1-65535")
    return port


def _password_hash(value: str) -> str | None:
    """A password hash as ``callbridge console --hash-password`` prints it (werkzeug's format:
    ``scrypt:…$salt$hash``), never the password itself."""
    text = value.strip()
    if text and not PASSWORD_HASH.fullmatch(text):
        raise ValueError(
            "must be a password hash printed by `callbridge console --hash-password`, "
            "not a password"
        )
    return text or None


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text not in {"", "0", "1", "true", "false", "yes", "no"}:
        raise ValueError("must be true or false")
    return text in {"1", "true", "yes"}


def _url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _broker_url(value: str) -> str:
    """A kombu URL of a transport callbridge runs on; a relative file broker made absolute."""
    value = value.strip()
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme not in BROKER_SCHEMES:
        named = f"scheme {scheme!r} is not one" if scheme else "it has no scheme"
        raise ValueError(
            f"must be amqp://USER:PASSWORD@HOST:5672/VHOST (RabbitMQ) or filesystem:///PATH "
            f"({named})"
        )
    if scheme == EMBEDDED_BROKER_SCHEME:
        return f"{EMBEDDED_BROKER_SCHEME}:///{embedded_broker_folder(value)}"
    try:
        _ = urllib.parse.urlsplit(value).port  # read, it checks the port
    except ValueError:
        raise ValueError("its port must be a number 1-65535") from None
    return value


def embedded_broker_folder(broker_url: str) -> pathlib.Path:
    """The absolute folder of a file broker: ``filesystem:///var/broker`` is ``var/broker``
    under the current folder, ``filesystem:////srv/broker`` the absolute ``/srv/broker``."""
    path = urllib.parse.urlsplit(broker_url).path
    relative = path[1:] if path.startswith("/") else path
    return pathlib.Path(relative or f"{DEFAULT_VAR_DIR}/broker").absolute()


def _database_url(value: str) -> str:
    """A SQLite file (made absolute) or a PostgreSQL database reached through psycopg 3."""
    try:
        url = sa.engine.make_url(value.strip())
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST/DATABASE") from None
    driver = DATABASE_DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            "must be sqlite:///PATH or postgresql://USER@HOST/DATABASE (psycopg 3); "
            f"{url.drivername!r} is not one"
        )
    url = url.set(drivername=driver)
    if driver == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(pathlib.Path(url.database).absolute()))
    return url.render_as_string(hide_password=False)


# variable, Settings field, default, parser. Defaults are strings: they go through the same parser.
_VARIABLES: tuple[tuple[str, str, str, Callable[[str], Any]], ...] = (
    ("BROKER_URL", "broker_url", f"filesystem:///{DEFAULT_VAR_DIR}/broker", _broker_url),
    ("DATABASE_URL", "database_url", f"sqlite:///{DEFAULT_VAR_DIR}/callbridge.db", _database_url),
    ("IS74_API_URL", "is74_api_url", "https://ai-assistant.is74.ru", _url),
    ("IS74_API_TOKEN", "is74_api_token", "", _optional_token),
    ("IS74_AUTH_HEADER", "is74_auth_header", "Authorization", _header_name),
    ("SENTRY_DSN", "sentry_dsn", "", _optional_text),
    ("SENTRY_ENVIRONMENT", "sentry_environment", "", _optional_text),
    ("CALL_REQUESTS_QUEUE", "call_requests_queue", "crm.call_requests", _text),
    ("CALL_RESULTS_QUEUE", "call_results_queue", "crm.call_results", _text),
    ("DEAD_LETTER_QUEUE", "dead_letter_queue", "crm.call_requests.dead", _text),
    ("CAMPAIGN_TIMEZONE", "campaign_timezone", "Asia/Yekaterinburg", _timezone),
    ("PLATFORM_TIMEZONE", "platform_timezone", "Asia/Yekaterinburg", _timezone),
    ("CALLING_HOURS", "calling_hours", DEFAULT_CALLING_HOURS, parse_calling_hours),
    ("REPORT_DELAY_MINUTES", "report_delay_minutes", "15", _int_at_least(0)),
    ("REPORT_RETRY_HOURS", "report_retry_hours", "24", _positive_float),
    ("REPORT_EVENT_MAX_BYTES", "report_event_max_bytes", str(4 * 1024 * 1024), _int_at_least(4096)),
    ("REPORT_PHONE_FIELDS", "report_phone_fields", "phone_number,phone", _field_list),
    ("MAX_PHONES_PER_REQUEST", "max_phones_per_request", "50000", _int_at_least(1)),
    # default: MAX_PHONES_PER_REQUEST
    ("MAX_PHONES_PER_CAMPAIGN", "max_phones_per_campaign", "", _optional_count),
    ("MAX_MESSAGE_BYTES", "max_message_bytes", str(16 * 1024 * 1024), _int_at_least(1024)),
    ("HTTP_TIMEOUT_SECONDS", "http_timeout_seconds", "20", _positive_float),
    ("HTTP_CALL_DEADLINE_SECONDS", "http_call_deadline_seconds", "60", _positive_float),
    (
        "PLATFORM_MAX_ANSWER_BYTES",
        "platform_max_answer_bytes",
        str(64 * 1024 * 1024),
        _int_at_least(4096),
    ),
    ("HTTP_CONCURRENCY", "http_concurrency", "4", _int_at_least(1)),
    ("RETRY_MAX_MINUTES", "retry_max_minutes", "60", _positive_float),
    ("PREFETCH_COUNT", "prefetch_count", "50", _int_at_least(1)),
    ("MAX_DELIVERIES", "max_deliveries", "5", _int_at_least(1)),
    ("MAX_PUBLISH_REFUSALS", "max_publish_refusals", "10", _int_at_least(1)),
    ("BROKER_HEARTBEAT_SECONDS", "broker_heartbeat_seconds", "30", _int_at_least(0)),
    ("LOG_LEVEL", "log_level", "INFO", _log_level),
    ("LOG_FORMAT", "log_format", "text", _one_of("text", "json")),
    ("METRICS_PORT", "metrics_port", "", _optional_port),
    ("CONSOLE_PASSWORD", "console_password", "", _password_hash),
    ("CONSOLE_USERS_FILE", "console_users_file", "", _optional_text),
    ("CONSOLE_SECRET_KEY", "console_secret_key", "", _optional_text),
    ("CONSOLE_HTTPS", "console_https", "false", _flag),
    ("CONSOLE_TRUSTED_PROXY", "console_trusted_proxy", "", _optional_text),
)
# Never shown, not even in the line that says a value is wrong.
SECRET_VARIABLES = frozenset(
    {"IS74_API_TOKEN", "SENTRY_DSN", "CONSOLE_PASSWORD", "CONSOLE_SECRET_KEY"}
)

DOCUMENTED_VARIABLES: tuple[str, ...] = tuple(name for name, *_ in _VARIABLES)


def variables_help() -> str:
    """Every setting with its default, for ``callbridge run --help``."""
    listed = "\n".join(
        f"  {name:24} {default or '(not set)'}" for name, _, default, _ in _VARIABLES
    )
    return (
        "Every setting is an environment variable, read and checked at start (the README's "
        "Configuration table says what each does). Variable and default:\n" + listed
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting from ``environ`` (default ``os.environ``); raise on the first bad one."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, field, default, parse in _VARIABLES:
        raw = environ.get(variable, default)
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            reason = str(exc)
            if reason.startswith(("invalid literal", "could not convert")):
                reason = "must be a number"
            raise ConfigError(f"{variable}={_shown(variable, raw)}: {reason}") from None
    if values["is74_api_token"] is None and "IS74_API_TOKEN" in environ:
        raise ConfigError("IS74_API_TOKEN is set but empty")
    if values["max_phones_per_campaign"] is None:
        values["max_phones_per_campaign"] = values["max_phones_per_request"]
    return Settings(**values)


def _shown(variable: str, raw: str) -> str:
    """The value as it may appear in an error line: never a secret."""
    if variable in SECRET_VARIABLES:
        return "<hidden>"
    if variable in {"DATABASE_URL", "BROKER_URL", "IS74_API_URL"}:
        return repr(without_password(raw.strip()))
    return repr(raw)


def without_password(url: str) -> str:
    """The URL with its password (if any) as ``***``: safe to print."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def describe_broker(broker_url: str) -> str:
    """``RabbitMQ 127.0.0.1:5672 vhost /``, or ``file broker /abs/folder``: no password."""
    if broker_url.startswith(f"{EMBEDDED_BROKER_SCHEME}:"):
        return f"file broker {embedded_broker_folder(broker_url)}"
    parts = urllib.parse.urlsplit(broker_url)
    vhost = urllib.parse.unquote(parts.path[1:]) or "/"
    user = f"{parts.username}@" if parts.username else ""
    return f"RabbitMQ {user}{parts.hostname or 'localhost'}:{parts.port or 5672} vhost {vhost}"


def describe_store(database_url: str) -> str:
    """``SQLite /abs/file.db`` or ``PostgreSQL user@host:5432/db``: no password."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite {url.database or ':memory:'}"
    user = f"{url.username}@" if url.username else ""
    return f"PostgreSQL {user}{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def describe_queues(settings: Settings) -> str:
    return (
        f"{settings.call_requests_queue} → {settings.call_results_queue}, "
        f"dead letters {settings.dead_letter_queue}"
    )


# What a command may use, each shown by ``where``.
BROKER, STORE, PLATFORM, QUEUES = "broker", "store", "platform", "queues"


def where(settings: Settings, parts: Iterable[str]) -> str:
    """The named parts of the deployment, for a command's first line: never a secret."""
    shown = {
        BROKER: lambda: f"broker {describe_broker(settings.broker_url)}",
        STORE: lambda: f"store {describe_store(settings.database_url)}",
        PLATFORM: lambda: f"platform {without_password(settings.is74_api_url)}",
        QUEUES: lambda: f"queues {describe_queues(settings)}",
    }
    return "; ".join(shown[part]() for part in parts)
