"""``callbridge console``: serve the operator's web console (``console``), or print the hash of
a password for ``CONSOLE_PASSWORD`` or a users file (``--hash-password``, the password read from
standard input, never from the command line where other users could see it)."""

from __future__ import annotations

import argparse
import getpass
import sys

from adapters.config import BROKER, PLATFORM, QUEUES, STORE, Settings
from worker.commands import UsageError

USES = (STORE, BROKER, PLATFORM, QUEUES)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8075
MAX_PASSWORD = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"default {DEFAULT_HOST}")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password from standard input and print its hash, for CONSOLE_PASSWORD "
        "or a line of CONSOLE_USERS_FILE",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    from console.users import hash_password

    if args.hash_password:
        print(hash_password(_password()))
        return 0
    from console.server import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def _password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline(MAX_PASSWORD + 1).rstrip("\r\n")
    if not password:
        raise UsageError("no password given on standard input")
    if len(password) > MAX_PASSWORD:
        raise UsageError(f"a password is at most {MAX_PASSWORD} characters")
    return password


def _port(text: str) -> int:
    port = int(text) if text.isascii() and text.isdigit() else 0
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port
