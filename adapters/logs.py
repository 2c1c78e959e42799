"""Log lines: one per state change, text or JSON, with phones, add_data and secrets redacted.

Redaction is the safety net behind the rule that no phone number, ``add_data`` value or token
reaches a log line: callers do not log them on purpose, but an exception message, a library's
log line or a repr can still carry one. A filter on the root handler therefore rewrites every
record's final text before it is formatted:

* every configured secret (the API token, the Sentry DSN key) becomes ``***``;
* an ``add_data`` object in any notation (JSON, a Python repr, ``add_data={...}``) becomes ``***``;
* the value of an extra field under a sensitive key (``add_data``, ``phone``, ``body``,
  ``headers``, anything with ``token`` or ``password`` in its name...) becomes ``[Filtered]``;
* in free text, what parses as a phone number (``schemas.phones``: the CRM's own rules) is
  masked as ``+7912***6789`` (Russian numbers) or ``+44***0958`` (others).

The phone rule keys on what can be a phone, never on a mere run of digits: a run of digits,
spaces, dashes, brackets and dots is split at its separators, and every stretch of it that is a
valid number is masked. So ``demo-20261202-194102``, a Unix timestamp or a long numeric id stay
as they are and can be grepped for, while ``lead-89120000990`` shows as ``lead-+7912***0990``.
ISO and ``dd.mm.yyyy`` dates, decimals, IPv4 addresses, UUIDs and hex trace ids are never looked
at. ``mask_document`` shows a whole message to an operator the same way, phones masked where
they stand.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import IO, TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from schemas.phones import normalise_phone

if TYPE_CHECKING:
    from adapters.config import Settings

CALLBRIDGE_LOGGER = "callbridge"
NOISY_LOGGERS = ("amqp", "kombu", "urllib3")
MASK = "***"
FILTERED = "[Filtered]"
# Values under these keys are dropped whole: request bodies, headers, the contacts themselves.
SENSITIVE_KEYS = frozenset(
    {"add_data", "phone", "phones", "phone_number", "body", "data", "headers", "cookie", "dsn"}
)
SENSITIVE_KEY_PARTS = ("token", "secret", "password", "authorization", "api_key")
# The fields of the contract and of report rows that hold a phone.
PHONE_KEYS = frozenset({"phone", "phone_number"})

# Not a letter or digit on that side (an underscore counts as a separator).
_EDGE_BEFORE = r"(?<![^\W_])"
_EDGE_AFTER = r"(?![^\W_])"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_NOT_PHONE = re.compile(
    rf"""{_EDGE_BEFORE}(
        \d{{4}}-\d{{2}}-\d{{2}}(?:[T\ ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?Z?)?  # ISO date-time
      | \d{{2}}\.\d{{2}}\.\d{{4}}(?:\ \d{{2}}:\d{{2}})?                          # dd.mm.yyyy
      | {_OCTET}(?:\.{_OCTET}){{3}}(?![.\d])                                  # IPv4
      | (?<!\.)(?<!\d[\ )-])\d+\.\d+(?![.\d]|[\ (-]\d)                      # decimal
      | [0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}    # UUID
      | [0-9a-f]{{32}} | [0-9a-f]{{16}}                                      # trace/span id
    ){_EDGE_AFTER}""",
    re.VERBOSE,
)
_PHONE = re.compile(rf"{_EDGE_BEFORE}\+?\(?\d(?:[ \u00a0.()-]{{0,3}}\d)+{_EDGE_AFTER}")
_DIGIT_GROUP = re.compile(r"\+?\d+")
_MIN_PHONE_DIGITS = 10
_MAX_PHONE_DIGITS = 15  # E.164
# As many digits as the shortest phone, anywhere in the text: without them no run is masked.
_ENOUGH_DIGITS = re.compile(rf"\d(?:\D*\d){{{_MIN_PHONE_DIGITS - 1}}}")
# add_data holds scalars only, so its object has no nested braces; quoted braces are skipped.
_ADD_DATA = re.compile(
    r"""(add_data['"]?\s*[:=]\s*)\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^{}"'])*\}"""
)
_BARE_VALUE = re.compile(r"[^\s\"=]+")
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove secrets, add_data objects and phone-like runs from any text."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    if "add_data" in text:
        text = _ADD_DATA.sub(rf"\g<1>{MASK}", text)
    if not _ENOUGH_DIGITS.search(text):  # most log fields: ids, names, states
        return text
    pieces = _NOT_PHONE.split(text)
    # split() with one group alternates: text to mask, a kept match, text to mask, ...
    return "".join(
        piece if index % 2 else _PHONE.sub(_mask_phone, piece) for index, piece in enumerate(pieces)
    )


def _mask_phone(match: re.Match[str]) -> str:
    """The run with every stretch of it that parses as a phone masked, longest stretch first."""
    run = match.group()
    groups = list(_DIGIT_GROUP.finditer(run))
    digits = [len(group.group().lstrip("+")) for group in groups]
    if sum(digits) < _MIN_PHONE_DIGITS:
        return run
    pieces: list[str] = []
    done = 0  # run[:done] is in pieces
    first = 0
    while first < len(groups):
        found = _phone_from(run, groups, digits, first)
        if found is None:
            first += 1
            continue
        last, e164 = found
        start = groups[first].start()
        start -= run[start - 1 : start] == "("  # the bracket of ``(912) 345-67-89``
        pieces += [run[done:start], masked_phone(e164)]
        done = groups[last].end()
        first = last + 1
    return "".join(pieces) + run[done:]


def _phone_from(
    run: str, groups: list[re.Match[str]], digits: list[int], first: int
) -> tuple[int, str] | None:
    """The last group and E.164 of the longest phone starting at group ``first``, if any."""
    for last in range(len(groups) - 1, first - 1, -1):
        count = sum(digits[first : last + 1])
        if not _MIN_PHONE_DIGITS <= count <= _MAX_PHONE_DIGITS:
            continue
        e164 = normalise_phone(run[groups[first].start() : groups[last].end()])
        if e164 is not None:
            return last, e164
    return None


def masked_phone(e164: str) -> str:
    """``+7912***6789``, or ``+44***0958`` outside Russia: enough to tell numbers apart."""
    head = e164[:5] if e164.startswith("+7") else e164[:3]
    return f"{head}{MASK}{e164[-4:]}"


def redact_value(value: object, secrets: Sequence[str] = ()) -> object:
    """Redact any structure: strings (and dict keys) as ``redact``, values of sensitive keys
    replaced by ``[Filtered]``; scalars keep their type unless they look like a phone."""
    if value is None or isinstance(value, bool | float | date):
        return value
    if isinstance(value, int):
        redacted = redact(str(value), secrets)
        return value if redacted == str(value) else redacted
    if isinstance(value, bytes | bytearray):
        return redact(bytes(value).decode("utf-8", "replace"), secrets)
    if isinstance(value, Mapping):
        return {
            redact(str(key), secrets): FILTERED if _is_sensitive(key) else redact_value(v, secrets)
            for key, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, secrets) for item in value]
    return redact(str(value), secrets)


def _is_sensitive(key: object) -> bool:
    name = str(key).lower().replace("-", "_")
    return name in SENSITIVE_KEYS or any(part in name for part in SENSITIVE_KEY_PARTS)


def mask_document(
    value: object, secrets: Sequence[str] = (), *, phone_keys: frozenset[str] = PHONE_KEYS
) -> object:
    """A decoded message or event, to show an operator: each phone masked where it stands
    (under ``phone_keys``, and in text), ``add_data`` values and secrets hidden, the rest kept."""
    if isinstance(value, Mapping):
        return {
            redact(str(key), secrets): _masked_field(str(key).lower(), item, secrets, phone_keys)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_document(item, secrets, phone_keys=phone_keys) for item in value]
    return redact_value(value, secrets)


def _masked_field(
    name: str, value: object, secrets: Sequence[str], phone_keys: frozenset[str]
) -> object:
    if name == "add_data":
        return {key: MASK for key in value} if isinstance(value, Mapping) else MASK
    if name in phone_keys and isinstance(value, str | int) and not isinstance(value, bool):
        e164 = normalise_phone(value)
        return masked_phone(e164) if e164 is not None else MASK
    if any(part in name for part in SENSITIVE_KEY_PARTS):
        return FILTERED
    return mask_document(value, secrets, phone_keys=phone_keys)


def secrets_from(settings: Settings) -> tuple[str, ...]:
    """The configured values that must never be shown: the API token, the Sentry DSN keys,
    and the console's signing key and password hash."""
    dsn = urlsplit(settings.sentry_dsn) if settings.sentry_dsn else None
    candidates = (
        settings.is74_api_token,
        dsn.username if dsn else None,
        dsn.password if dsn else None,
        settings.console_secret_key,
        settings.console_password,
    )
    return tuple(secret for secret in candidates if secret)


def configure_logging(
    *,
    level: str,
    fmt: Literal["text", "json"],
    secrets: Sequence[str] = (),
    stream: IO[str] | None = None,
) -> None:
    """Install the one root handler; calling again replaces it (tests and the CLI do)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CallbridgeHandler)]:
        root.removeHandler(handler)
        handler.close()
    handler = _CallbridgeHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_RedactingFilter(tuple(secrets)))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger(CALLBRIDGE_LOGGER).setLevel(level)
    quiet = max(logging.WARNING, logging.getLevelName(level))
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def state_change(
    logger: logging.Logger,
    event: str,
    *,
    request_id: str | None,
    campaign_id: int | None = None,
    level: int = logging.INFO,
    **fields: object,
) -> None:
    """Log one line for one step of a request's life, so a request can be followed by its id.

    Field names must not be LogRecord attributes (``name``, ``msg``...): logging raises on those.
    """
    extra = {"event": event, "request_id": request_id, "campaign_id": campaign_id, **fields}
    logger.log(level, event, extra=extra, stacklevel=2)


class _CallbridgeHandler(logging.StreamHandler):
    """Marks the handler this module installed, so a second configure replaces it."""


class _RedactingFilter(logging.Filter):
    """Rewrites the record in place, so every handler after it sees only redacted text."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad log call must not take the worker down
            message = f"{record.msg} (the log arguments did not fit the format)"
        record.msg = redact(message, self._secrets)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        for key, value in _extra_fields(record).items():
            setattr(
                record, key, FILTERED if _is_sensitive(key) else redact_value(value, self._secrets)
            )
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """Whatever the caller passed in ``extra=``, in the order given."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """Extra fields without the event (it is the message) and without empty values."""
    return {k: v for k, v in _extra_fields(record).items() if k != "event" and v is not None}


class _TextFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger> <message> key=value ...``; a traceback follows, indented.

    The redacting filter has already rendered the traceback into ``exc_text``.
    """

    def format(self, record: logging.LogRecord) -> str:
        head = [_timestamp(record), record.levelname, record.name, record.getMessage()]
        head += [f"{key}={_text_value(value)}" for key, value in _fields(record).items()]
        text = "\n".join(filter(None, (" ".join(head), record.exc_text, record.stack_info)))
        return text.replace("\n", "\n    ")


def _text_value(value: object) -> str:
    if isinstance(value, str) and _BARE_VALUE.fullmatch(value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the fields. A state change's
    message is its event (``state_change``), so every line has its text under one key.

    The redacting filter has already rendered the traceback into ``exc_text``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)
