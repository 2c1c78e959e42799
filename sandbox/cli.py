"""``callbridge sandbox``: the platform stand-in as a process, for staging, demos and CRM teams.

The token comes from ``--token`` or ``IS74_API_TOKEN`` (the same variable the worker reads, so
one environment serves both); it is never printed. It says where it listens on stdout, and logs
each call it answers on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from sandbox.reports import PHONE_FORMATS
from sandbox.server import SandboxServer

DEFAULT_PORT = 8074


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's flags, each named after the option it sets (see ``SandboxServer``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    parser.add_argument("--token", help="the API token clients must send (default IS74_API_TOKEN)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every API answer"
    )
    parser.add_argument(
        "--create-fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault for the next campaign creation, repeatable, used in order: 503, "
        "429:retry-after=2, 500, 401, drop, drop-after-create, no-id, slow:SECONDS; or a 200 "
        "no client should trust: endless (a body that never ends), drip:SECONDS (one byte "
        "every SECONDS), deep[:LEVELS] (JSON nested 100000 levels), id:INTEGER (that id)",
    )
    parser.add_argument(
        "--report-fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="fault for the next report call, repeatable: a status, drop, slow:SECONDS, "
        "endless, drip:SECONDS or deep[:LEVELS]",
    )
    parser.add_argument(
        "--report-missing-every",
        type=int,
        default=0,
        metavar="N",
        help="leave every Nth phone out of reports (0: none)",
    )
    parser.add_argument(
        "--report-rows-per-phone", type=int, default=1, metavar="N", help="report rows per phone"
    )
    parser.add_argument(
        "--report-phone-format",
        choices=PHONE_FORMATS,
        default=PHONE_FORMATS[0],
        help="how report rows write the phone (default: digits, 79123456789)",
    )
    parser.add_argument(
        "--report-phone-field", default="phone_number", help="the report rows' phone field"
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM: exit status 0, or 2 for unusable flags, 1 for a busy port."""
    token = args.token or os.environ.get("IS74_API_TOKEN")
    if not token:
        print(
            "callbridge sandbox: no API token: pass --token or set IS74_API_TOKEN", file=sys.stderr
        )
        return 2
    try:
        server = SandboxServer(
            host=args.host,
            port=args.port,
            token=token,
            latency=args.latency,
            create_faults=args.create_fault,
            report_faults=args.report_fault,
            report_missing_every=args.report_missing_every,
            report_rows_per_phone=args.report_rows_per_phone,
            report_phone_format=args.report_phone_format,
            report_phone_field=args.report_phone_field,
        )
    except ValueError as exc:
        print(f"callbridge sandbox: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        serve_forever(server)
    except OSError as exc:
        print(
            f"callbridge sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0


def serve_forever(server: SandboxServer, *, announce: Callable[[str], None] = print) -> None:
    """Start ``server``, say where it listens in one line, and stop it on SIGINT or SIGTERM."""
    stopping = threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: stopping.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.start()
        announce(f"is74 sandbox listening on {server.url} (Ctrl-C to stop)")
        sys.stdout.flush()
        stopping.wait()
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
