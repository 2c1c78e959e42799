"""``callbridge``: the worker, the sandbox platform, and the operator's commands.

Every command reads the same environment variables as the worker (see the README); a bad
value stops it with one line naming the variable and exit code 2. Each operator command is a
module of ``worker.commands`` with ``add_arguments(parser)`` and ``run_from_args(settings,
args)``.

``callbridge sandbox`` runs the platform stand-in (``python -m sandbox``) in place of this
process: the stand-in stands apart from the worker's code, which never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from adapters.config import ConfigError, Settings, load_settings
from worker import __version__
from worker.commands import dead_letters, demo, health, report, resolve, send, status

EXIT_CONFIG = 2
SANDBOX = "sandbox"

# name, module, one line of help.
OPERATOR_COMMANDS = (
    ("send", send, "publish a call request (a JSON file, or - for stdin)"),
    ("status", status, "show a request's state, campaign and events"),
    ("report", report, "fetch a campaign's report now, publish it"),
    ("health", health, "exit 0 if a worker is alive and keeping up, else 1 (why)"),
    ("dead-letters", dead_letters, "list the dead-letter queue; replay messages"),
    ("resolve", resolve, "settle a request whose creation outcome is unknown"),
    ("demo", demo, "run worker and sandbox on embedded defaults, send a sample"),
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [SANDBOX]:
        os.execv(sys.executable, [sys.executable, "-m", "sandbox", *argv[1:]])
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"callbridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return args.command(settings, args)
    except ConfigError as exc:
        print(f"callbridge: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbridge",
        description="The worker between a CRM and the is74 AI-assistant calling platform.",
    )
    parser.add_argument("--version", action="version", version=f"callbridge {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[Settings, argparse.Namespace], int], help: str):
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=handler)
        return sub

    command("run", _run, "run the worker until SIGTERM/SIGINT")
    # Listed for --help; ``main`` hands the command line to the sandbox before parsing it.
    commands.add_parser(SANDBOX, help="serve a local stand-in for the platform (see its --help)")
    for name, module, help in OPERATOR_COMMANDS:
        module.add_arguments(command(name, module.run_from_args, help))
    return parser


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from worker.runner import run

    return run(settings)
