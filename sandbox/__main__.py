"""``python -m sandbox``: the same as ``callbridge sandbox``, without installing the package."""

from __future__ import annotations

import argparse
import sys

from sandbox.cli import add_arguments, run_from_args

parser = argparse.ArgumentParser(
    prog="python -m sandbox", description="A local stand-in for the is74 platform API."
)
add_arguments(parser)
sys.exit(run_from_args(parser.parse_args()))
