"""Call requests as a CRM would publish them, and the ways to publish them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from kombu import Connection, Producer

ZONE = "Asia/Yekaterinburg"
NEXT_ZONE = "Asia/Omsk"  # an hour ahead of ZONE, all year


def phone(n: int) -> str:
    """A distinct valid Russian mobile number per ``n``, written the way CRMs write them."""
    digits = f"912{n:07d}"
    return f"+7 {digits[:3]} {digits[3:6]}-{digits[6:8]}-{digits[8:]}"


def e164(n: int) -> str:
    """``phone(n)`` as the worker sends it to the platform and names it in reports."""
    return f"+7912{n:07d}"


def window_tomorrow() -> dict[str, str]:
    date = (dt.datetime.now(ZoneInfo(ZONE)) + dt.timedelta(days=1)).date()
    return {"date": date.isoformat(), "start_time": "09:00", "end_time": "17:00"}


def window_ending_in(minutes: int, *, now: dt.datetime | None = None) -> dict[str, str]:
    """A window that started a minute before it ends or before now, whichever is earlier, and
    ends ``minutes`` from now (or ``now``) at the turn of a minute (with ``minutes`` <= 0, one
    that ended that long ago); its ``timezone`` included.

    A window lies within one day of its zone, and around midnight in ``ZONE`` this one would
    not: it is then given in a zone an hour ahead, where it is one o'clock (windows here span
    less than an hour).
    """
    instant = now or dt.datetime.now(dt.UTC)
    for zone in (ZONE, NEXT_ZONE):
        local = instant.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
        end = local + dt.timedelta(minutes=minutes)
        start = min(local, end) - dt.timedelta(minutes=1)
        if start.date() == end.date():
            return {
                "date": end.date().isoformat(),
                "start_time": start.strftime("%H:%M"),
                "end_time": end.strftime("%H:%M"),
                "timezone": zone,
            }
    raise ValueError(f"a window of {minutes} minutes fits in neither zone")


def call_request(
    request_id: str,
    *,
    phones: int = 2,
    first_phone: int = 0,
    schedule: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    **campaign: Any,
) -> dict[str, Any]:
    body = {
        "request_id": request_id,
        "campaign": {
            "project_id": 1,
            "scenario_id": 951,
            "start_block_id": 10,
            "phone_id": 5,
            "name": "Подтверждение записи",
            "schedule": {
                **window_tomorrow(),
                "attempts": 2,
                "interval": 5,
                "timezone": ZONE,
                **(schedule or {}),
            },
            **campaign,
        },
        "phones": [
            {
                "phone": phone(first_phone + n),
                "external_id": f"{request_id}-lead-{n}",
                "add_data": {"name": f"Клиент Секретов {n}"},
            }
            for n in range(phones)
        ],
    }
    if report is not None:
        body["report"] = report
    return body


def publish(
    broker_url: str,
    queue: str,
    body: dict[str, Any] | bytes,
    *,
    content_type: str | None = "application/json",
    **properties: Any,
) -> None:
    """Publish like the CRM: default exchange, persistent; a dict body is sent as JSON.

    On the channel itself, so that ``content_type=None`` sends no content type at all (a kombu
    Producer would name one).
    """
    raw = json.dumps(body, ensure_ascii=False).encode() if isinstance(body, dict) else body
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.default_channel
        message = channel.prepare_message(
            raw,
            0,
            content_type,
            "utf-8" if content_type else None,
            {},
            {**properties, "delivery_mode": 2},
        )
        channel.basic_publish(message, exchange="", routing_key=queue)


def publish_many(broker_url: str, queue: str, bodies: list[dict[str, Any]]) -> None:
    with Connection(broker_url, transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection.default_channel)
        for body in bodies:
            producer.publish(
                json.dumps(body, ensure_ascii=False).encode(),
                exchange="",
                routing_key=queue,
                delivery_mode=2,
                content_type="application/json",
                content_encoding="utf-8",
            )
