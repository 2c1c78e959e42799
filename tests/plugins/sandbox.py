"""Fixtures that run the sandbox platform over real HTTP (filled in by the sandbox work)."""
