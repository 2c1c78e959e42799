"""How the pages write times, ages, phones and documents (Jinja2 filters)."""

from __future__ import annotations

import datetime as dt
import json

from flask import Flask

from adapters.logs import MASK, masked_phone
from adapters.store import utcnow
from schemas.phones import normalise_phone


def when(moment: dt.datetime | None) -> str:
    """``2026-11-30 10:15:02Z``: UTC, to the second."""
    if moment is None:
        return "—"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 d``."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def ago(moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    return f"{age(max((utcnow() - moment).total_seconds(), 0.0))} ago"


def phone(value: object) -> str:
    """A phone as every page shows it: ``+7912***6789``; what is not one, hidden whole."""
    e164 = normalise_phone(value) if isinstance(value, str | int) else None
    return masked_phone(e164) if e164 else MASK


def document(value: object) -> str:
    """A decoded (and already masked) message or event, indented."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def install(app: Flask) -> None:
    app.jinja_env.filters.update(when=when, age=age, ago=ago, phone=phone, document=document)
