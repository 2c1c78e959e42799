"""The states of a request and of each of its campaigns, named once.

A campaign (one planned campaign of a request; most requests are one):

    received ─claim─▶ sending ─▶ created ─claim─▶ reporting ─▶ reported
       ▲                │  │        ▲                 │
       └── retry ◀──────┘  └▶ failed └─── (retry) ────┘──▶ report_failed

``sending`` is the dangerous one: the POST may have reached the platform. A ``sending`` row
whose owner is no longer alive is settled as ``failed`` with an unknown outcome, never resent.

A request is ``pending`` until every campaign of it is settled (created or failed), then
``created`` (at least one was) or ``failed`` — the moment its outcome event is queued; or
``rejected`` (a contract violation: only its rejection event is kept).
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    PENDING = "pending"
    RECEIVED = "received"
    RETRY = "retry"
    SENDING = "sending"
    CREATED = "created"
    FAILED = "failed"
    REJECTED = "rejected"
    REPORTING = "reporting"
    REPORTED = "reported"
    REPORT_FAILED = "report_failed"


# Campaigns waiting for a creation step to claim them.
PENDING_CREATE = (State.RECEIVED, State.RETRY)
# Campaigns whose creation is not settled yet: their request waits for them.
UNSETTLED = (*PENDING_CREATE, State.SENDING)
# Campaigns claimed by a step that is working on them now.
IN_FLIGHT = (State.SENDING, State.REPORTING)
