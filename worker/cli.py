"""``callbridge``: the worker, the sandbox platform, and the operator's commands.

Every command reads the same environment variables as the worker (see the README); a bad
value stops it with one line naming the variable and exit code 2.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable, Sequence

from worker import __version__
from worker.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

    from sandbox.cli import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(command("sandbox", _sandbox, "serve a local stand-in for the platform"))

    send = command("send", _send, "publish a call request (a JSON file, or - for stdin)")
    send.add_argument("file", help="the request body: a JSON file, or - to read stdin")
    send.add_argument("--reply-to", help="queue for this request's result events")
    send.add_argument("--correlation-id", help="copied to every result event")

    status = command("status", _status, "show a request's state, campaign and events")
    status.add_argument("request_id")

    # Operator commands: each module brings its own flags and its ``run_from_args``.
    from worker import dead_letters, health, report_command, resolve

    for name, module, help in (
        ("report", report_command, "fetch a campaign's report now, publish it"),
        ("health", health, "exit 0 if a worker is alive and keeping up, else 1 (why)"),
        ("dead-letters", dead_letters, "list the dead-letter queue; replay messages"),
        ("resolve", resolve, "settle a request whose creation outcome is unknown"),
    ):
        module.add_arguments(command(name, module.run_from_args, help))

    demo = command("demo", _demo, "run worker and sandbox on embedded defaults, send a sample")
    demo.add_argument("--phones", type=int, default=3, help="phones in the sample request")
    demo.add_argument(
        "--timeout", type=float, default=60, help="seconds to wait for each result event"
    )
    return parser


def _run(settings: Settings, _args: argparse.Namespace) -> int:
    from worker.runner import run

    return run(settings)


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from sandbox.cli import run_from_args

    return run_from_args(args)


def _send(settings: Settings, args: argparse.Namespace) -> int:
    from worker.send import publish_request, request_id_of

    body = sys.stdin.buffer.read() if args.file == "-" else pathlib.Path(args.file).read_bytes()
    message_id = publish_request(
        settings, body, reply_to=args.reply_to, correlation_id=args.correlation_id
    )
    print(
        f"published request {request_id_of(body) or '(no request_id)'} to "
        f"{settings.call_requests_queue} (message_id {message_id})"
    )
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from worker.status import print_status

    return print_status(settings, args.request_id)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo(settings, phones=args.phones, timeout=args.timeout)
