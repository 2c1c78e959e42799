"""The operator's commands of the ``callbridge`` CLI: argument parsing and printing only; what
they do lives in ``handlers``, which the web console calls too.

Each module has ``add_arguments(parser)``, ``run_from_args(settings, args)`` and ``USES``: the
parts of the deployment it uses (``adapters.config.where``), named on its first line.
"""

from __future__ import annotations

import argparse
import sys

from handlers.actions import Told
from schemas.platform import is_campaign_id


class UsageError(Exception):
    """A command cannot do what it was asked (a file it cannot read, a body that breaks the
    contract): the message says what is wrong, in one line per problem."""


def campaign_id(text: str) -> int:
    """A campaign id on the command line: 1 to 2^63 - 1, as the stores hold it."""
    value = int(text) if text.isascii() and text.isdigit() else None
    if value is None or not is_campaign_id(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a campaign id (1 to 2^63 - 1)")
    return value


def tell(told: Told, command: str) -> int:
    """Print what an operator's action came to, its problem on stderr; the exit status."""
    for line in told.lines:
        print(line)
    if told.problem:
        print(f"{command}: {told.problem}", file=sys.stderr)
    return told.exit_code
