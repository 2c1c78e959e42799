"""A local stand-in for the is74 AI-assistant platform, strict to its documentation."""

from __future__ import annotations

from sandbox.cli import add_arguments, run_from_args, serve_forever
from sandbox.server import SandboxServer

__all__ = ["SandboxServer", "add_arguments", "run_from_args", "serve_forever"]
