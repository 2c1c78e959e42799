"""From a campaign's analytics to ``campaign.report`` events: the pure logic of the report step.

When a report is due, which period to ask the platform for, which of the request's contacts
each dialog row belongs to, and how a report of any size becomes events that each fit under
``REPORT_EVENT_MAX_BYTES``. No I/O here, so every rule is tested without a platform or broker.

Mapping rules (the contract says only "as the platform gave it plus phone and external_id"):

- A row's phone is the value of the first of ``phone_fields`` that the row holds with a value
  other than null or ``""``; that value alone decides the match, and it must be a string or an
  integer. Each distinct value is normalised once (``schemas.phones.normalise_phone``),
  whatever form the platform wrote it in.
- A matched row is the platform's row with ``phone`` set to the contact's E.164 form and
  ``external_id`` to its id. Both keys are overwritten if the platform's row had them: the
  contract promises the CRM that these two keys are *its* phone and id.
- An unmatched row, and a row that is not an object, is passed on exactly as the platform gave
  it: nothing is added, and a ``phone`` the platform wrote stays as it wrote it.
- ``missing`` lists every accepted contact that no row matched, in the request's order.

Splitting: the rows, then the ``missing`` entries, fill the parts in order, each part as full
as ``max_bytes`` allows. The first part must already say how many parts there are, so the rows
are walked twice: once to measure their encoded sizes and plan the parts, then again to encode
them into each part as it is yielded. Only one part's bytes are held at a time; the price is
encoding each row twice (about a second of CPU for 100,000 rows in all).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple

from schemas.events import CAMPAIGN_REPORT, campaign_report, encode_event, event_id
from schemas.json_codec import compact
from schemas.phones import normalise_phone
from schemas.platform import AnalyticsReport
from schemas.request import report_due_at

# An accepted phone of the request as (E.164, external_id).
AcceptedPhone = tuple[str, str | None]

_LISTS = ("rows", "missing")
# Stand-ins for the two lists while the rest of an event is encoded; random, so that nothing
# the CRM or the platform writes can look like them.
_MARKS = {name: f"{name}-{uuid.uuid4().hex}" for name in _LISTS}
_LIST_OF_MARK = {json.dumps(mark).encode(): name for name, mark in _MARKS.items()}
_MARK = re.compile(b"(" + b"|".join(map(re.escape, _LIST_OF_MARK)) + b")")


class ReportTooLarge(Exception):
    """One row or missing entry, with the event's other fields, cannot fit in one event.

    Raised before the first part is yielded, so nothing of the report has been stored and the
    caller can answer with ``campaign.report_failed``. Cutting the row down instead would hand
    the CRM a dialog that is not the one the platform recorded.
    """


def analytics_window(
    *,
    window_start: datetime,
    window_end: datetime,
    delay_minutes: int,
    fetched_at: datetime,
) -> tuple[datetime, datetime]:
    """The period to ask the analytics for, as (date_start, date_end) in UTC.

    ``date_start`` is the calling window's start. ``date_end`` is the fetch time, so that a
    report fetched late (the fetch is retried for hours) still holds the dialogs of late
    attempts; but never earlier than the window's end plus the delay, so that a report fetched
    early (the CLI's ``report`` command) still asks for the whole window. Both are written to
    the millisecond by ``schemas.platform.format_utc_timestamp``.
    """
    due = report_due_at(window_end=window_end, delay_minutes=delay_minutes)
    return _utc(window_start), max(_utc(fetched_at), due)


class ReportPart(NamedTuple):
    """One encoded ``campaign.report`` event, and how many ``missing`` entries it carries
    (so that the caller can count them without decoding what it stores)."""

    event_id: str
    body: bytes
    missing: int


def report_events(
    *,
    request_id: str,
    campaign_id: int,
    report: AnalyticsReport,
    contacts: Sequence[AcceptedPhone],
    phone_fields: Sequence[str],
    max_bytes: int,
    occurred_at: datetime,
    campaigns: int = 1,
) -> Iterator[ReportPart]:
    """The report's ``campaign.report`` events, part 1 to ``parts`` in order; ``campaigns`` is
    how many campaigns the request has (their events are named by campaign when several).

    Raises ``ReportTooLarge``, before yielding anything, when some row cannot fit in an event.
    """
    index = _ContactIndex(contacts, phone_fields)

    def frame(part: int, parts: int) -> _Frame:
        event = campaign_report(
            request_id=request_id,
            campaign_id=campaign_id,
            columns=report.columns,
            rows=[],
            missing=[],
            total_duration=report.total_duration,
            avg_duration=report.avg_duration,
            count=report.count,
            part=part,
            parts=parts,
            occurred_at=occurred_at,
            campaigns=campaigns,
        )
        return _Frame(event)

    # No part number is larger than the count of rows and contacts, so a frame numbered with
    # it is at least as long as the frame of any real part.
    widest = max(1, len(report.rows) + len(contacts))
    plan = _PartPlan(room=max_bytes - frame(widest, widest).empty_bytes)
    for row in report.rows:
        plan.add("rows", len(compact(index.tie(row))))
    missing = index.missing()
    for entry in missing:
        plan.add("missing", len(compact(entry)))

    parts = plan.parts()
    encoded_items = {
        "rows": (compact(index.tie(row)) for row in report.rows),
        "missing": (compact(entry) for entry in missing),
    }
    within = campaign_id if campaigns > 1 else None
    for part, counts in enumerate(parts, start=1):
        body = frame(part, len(parts)).filled(
            {name: islice(encoded_items[name], counts[name]) for name in _LISTS}
        )
        name = event_id(request_id, CAMPAIGN_REPORT, part=part, within=within)
        yield ReportPart(name, body, counts["missing"])


class _ContactIndex:
    """The request's accepted phones by E.164, and which of them the rows have named so far."""

    def __init__(self, contacts: Sequence[AcceptedPhone], phone_fields: Sequence[str]) -> None:
        self._external_ids = dict(contacts)
        self._phone_fields = tuple(phone_fields)
        # Row phone value -> the accepted E.164 it names, or None. A phone may have many rows,
        # and every row is tied twice (measuring, then building), so each value is read once.
        self._resolved: dict[str | int, str | None] = {}
        self._named: set[str] = set()

    def tie(self, row: Any) -> Any:
        """The row as the platform gave it, plus phone and external_id if it names a contact."""
        if not isinstance(row, dict):
            return row
        phone = self._contact_phone(row)
        if phone is None:
            return row
        self._named.add(phone)
        return {**row, "phone": phone, "external_id": self._external_ids[phone]}

    def missing(self) -> list[dict[str, str | None]]:
        """Every contact no row has named, in the request's order."""
        return [
            {"phone": phone, "external_id": external_id}
            for phone, external_id in self._external_ids.items()
            if phone not in self._named
        ]

    def _contact_phone(self, row: dict[str, Any]) -> str | None:
        raw = next(
            (row[field] for field in self._phone_fields if row.get(field) not in (None, "")),
            None,
        )
        if not isinstance(raw, str | int):
            return None
        if raw not in self._resolved:
            phone = normalise_phone(raw)
            self._resolved[raw] = phone if phone in self._external_ids else None
        return self._resolved[raw]


class _PartPlan:
    """How many rows and missing entries go in each part, packed greedily in order."""

    def __init__(self, *, room: int) -> None:
        if room < 0:
            raise ReportTooLarge(
                f"the event's fields other than rows and missing (columns above all) take "
                f"{-room:,} bytes more than a campaign.report event may hold "
                f"(REPORT_EVENT_MAX_BYTES)"
            )
        self._room = room
        self._full: list[dict[str, int]] = []
        self._counts = dict.fromkeys(_LISTS, 0)
        self._used = 0

    def add(self, name: str, size: int) -> None:
        """Place the next encoded item of list ``name`` ("rows" or "missing"), ``size`` bytes."""
        cost = size + (1 if self._counts[name] else 0)  # the comma before it
        if self._used and self._used + cost > self._room:
            self._full.append(self._counts)
            self._counts = dict.fromkeys(_LISTS, 0)
            self._used, cost = 0, size
        if cost > self._room:
            item = "a report row" if name == "rows" else "a missing entry"
            raise ReportTooLarge(
                f"{item} encodes to {size:,} bytes, and beside the event's other fields a "
                f"campaign.report event has room for {self._room:,} "
                f"(REPORT_EVENT_MAX_BYTES)"
            )
        self._counts[name] += 1
        self._used += cost

    def parts(self) -> list[dict[str, int]]:
        """The items of each list in each part; a report with none is one empty part."""
        return [*self._full, self._counts]


class _Frame:
    """An encoded event whose ``rows`` and ``missing`` are left open for encoded items.

    A part's body is the frame with its already encoded items joined in, so no part is ever
    encoded as a whole, and the event's other fields stay as ``schemas.events`` makes them.
    """

    def __init__(self, event: dict[str, Any]) -> None:
        split = _MARK.split(encode_event({**event, **_MARKS}))
        self._pieces = split[::2]
        self._slots = [_LIST_OF_MARK[mark] for mark in split[1::2]]

    @property
    def empty_bytes(self) -> int:
        """The body's length with both lists empty."""
        return sum(map(len, self._pieces)) + 2 * len(self._slots)

    def filled(self, items: dict[str, Iterator[bytes]]) -> bytes:
        """The body with each list holding these encoded items.

        Written item by item into one buffer: a list of the items and their join would hold
        the part two more times over.
        """
        body = bytearray(self._pieces[0])
        for name, piece in zip(self._slots, self._pieces[1:], strict=True):
            body += b"["
            for position, item in enumerate(items[name]):
                if position:
                    body += b","
                body += item
            body += b"]"
            body += piece
        return bytes(body)


def _utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError("a naive datetime is ambiguous: give it a time zone")
    return moment.astimezone(UTC)
