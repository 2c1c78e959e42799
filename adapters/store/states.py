"""The states a request moves through, named once.

    received ─claim─▶ sending ─▶ created ─claim─▶ reporting ─▶ reported
       ▲                │  │        ▲                 │
       └── retry ◀──────┘  └▶ failed └─── (retry) ────┘──▶ report_failed
    rejected (a contract violation; only its rejection event is kept)

``sending`` is the dangerous one: the POST may have reached the platform. A ``sending`` row
whose owner is no longer alive is settled as ``failed`` with an unknown outcome, never resent.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    RECEIVED = "received"
    RETRY = "retry"
    SENDING = "sending"
    CREATED = "created"
    FAILED = "failed"
    REJECTED = "rejected"
    REPORTING = "reporting"
    REPORTED = "reported"
    REPORT_FAILED = "report_failed"


# Waiting for a creation step to claim them.
PENDING_CREATE = (State.RECEIVED, State.RETRY)
# Claimed by a step that is working on them now.
IN_FLIGHT = (State.SENDING, State.REPORTING)
