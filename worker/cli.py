"""``callbridge``: the worker, the sandbox platform, and the operator's commands.

Every command reads the same environment variables as the worker (see the README). Each
operator command is a module of ``worker.commands``; before it runs, its first line (on stderr,
so that its output stays the command's own) names the broker, store, platform and queues it
uses.

Whatever an operator can get wrong ends in one line naming it and exit status 2, never a
traceback: an argument, a setting (``ConfigError``, which also covers a store that is not there
and a broker that cannot be reached), a file or a request body (``UsageError``), and a database
or broker failing under the command. They are turned into that line here, in one place.

``callbridge sandbox`` runs the platform stand-in (``python -m sandbox``) in place of this
process: the stand-in stands apart from the worker's code, which never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import amqp.exceptions
import sqlalchemy as sa
from kombu.exceptions import KombuError

from adapters.config import (
    ConfigError,
    Settings,
    describe_broker,
    describe_store,
    load_settings,
    variables_help,
    where,
)
from adapters.logs import redact
from worker import __version__
from worker.commands import (
    UsageError,
    console,
    dead_letters,
    demo,
    events,
    health,
    report,
    resolve,
    send,
    status,
)

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130
SANDBOX = "sandbox"
LINE_LIMIT = 500

# name, module, one line of help.
OPERATOR_COMMANDS = (
    ("send", send, "publish a call request (a JSON file, or - for stdin), checked first"),
    ("status", status, "show a request's state, campaign, events, and why"),
    ("events", events, "print a request's events as stored and published (--follow)"),
    ("report", report, "fetch a campaign's report once due (or --now), publish it; --preview"),
    ("health", health, "exit 0 if a worker is alive and keeping up, else 1 (why)"),
    ("dead-letters", dead_letters, "list the dead-letter queue; show, replay or drop messages"),
    ("resolve", resolve, "settle a request whose creation outcome is unknown"),
    ("console", console, "serve the operator's web console (--hash-password: hash a password)"),
    ("demo", demo, "run worker and sandbox on embedded defaults, send a sample"),
)


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line naming it and exit 2 (argparse would print the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [SANDBOX]:
        os.execv(sys.executable, [sys.executable, "-m", "sandbox", *argv[1:]])
    args = build_parser().parse_args(argv)
    prefix = f"callbridge {args.name}" if args.name else "callbridge"
    settings: Settings | None = None
    try:
        settings = load_settings()
        if args.uses:
            print(f"{prefix}: using {where(settings, args.uses)}", file=sys.stderr, flush=True)
        return args.command(settings, args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (ConfigError, UsageError) as exc:
        message = str(exc)
    except sa.exc.SQLAlchemyError as exc:
        message = _store_failed(settings, exc)
    except (KombuError, amqp.exceptions.AMQPError) as exc:
        message = _broker_failed(settings, exc)
    for line in message.splitlines():
        print(f"{prefix}: {line}", file=sys.stderr)
    return EXIT_CONFIG


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="callbridge",
        description="The worker between a CRM and the is74 AI-assistant calling platform.",
    )
    parser.add_argument("--version", action="version", version=f"callbridge {__version__}")
    parser.set_defaults(name=None, uses=())
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[Settings, argparse.Namespace], int], help: str):
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(command=handler, name=name)
        return sub

    run = command("run", _run, "run the worker until SIGTERM/SIGINT")
    run.epilog = variables_help()
    run.formatter_class = argparse.RawDescriptionHelpFormatter
    # Listed for --help; ``main`` hands the command line to the sandbox before parsing it.
    commands.add_parser(SANDBOX, help="serve a local stand-in for the platform (see its --help)")
    for name, module, help in OPERATOR_COMMANDS:
        sub = command(name, module.run_from_args, help)
        sub.set_defaults(uses=module.USES)
        module.add_arguments(sub)
    return parser


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from worker.runner import run

    return run(settings)


def _store_failed(settings: Settings | None, exc: sa.exc.SQLAlchemyError) -> str:
    """One line for a database failing under a command: which store, and the driver's words."""
    cause = getattr(exc, "orig", None) or exc
    store = describe_store(settings.database_url) if settings else "the store"
    return f"DATABASE_URL: {store} failed: {_one_line(cause)}"


def _broker_failed(settings: Settings | None, exc: Exception) -> str:
    broker = describe_broker(settings.broker_url) if settings else "the broker"
    return f"BROKER_URL: {broker} failed: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    """The first line of what an exception says, short and without a phone number."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return redact(f"{text or type(exc).__name__}")[:LINE_LIMIT]
