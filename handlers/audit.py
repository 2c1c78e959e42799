"""Writing an operator's action to the audit log: who did it, from where, and what came of it.

The console names the user who is logged in and the client's address; the CLI names the
operating-system user and the host it runs on. The detail is what the operator was told, with
phones masked as in every log line.
"""

from __future__ import annotations

import dataclasses
import getpass
import socket
from collections.abc import Sequence

from adapters.logs import redact
from adapters.store import AuditEntry, Store

DONE, REFUSED, FAILED = "done", "refused", "failed"
CLI_ROLE = "cli"


@dataclasses.dataclass(frozen=True)
class Actor:
    name: str
    role: str
    address: str


def cli_actor() -> Actor:
    """The person running a command: the operating-system user, on this host."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        name = "unknown"
    return Actor(name, CLI_ROLE, f"cli@{socket.gethostname()}")


def record(
    store: Store,
    actor: Actor,
    action: str,
    *,
    outcome: str,
    lines: Sequence[str],
    request_id: str | None = None,
    subject: str | None = None,
) -> int:
    """Add an entry to the audit log; its id."""
    return store.add_audit(
        AuditEntry(
            actor=actor.name,
            role=actor.role,
            address=actor.address,
            action=action,
            outcome=outcome,
            detail=redact("\n".join(lines)),
            request_id=request_id,
            subject=subject,
        )
    )
