"""Fixtures shared by every test: real services, the sandbox platform, unique names per run."""

pytest_plugins = [
    "pytester",
    "tests.plugins.sandbox",
    "tests.plugins.services",
    "tests.plugins.private_broker",
    "tests.plugins.sentry",
    "tests.plugins.console",
    "tests.plugins.browser",
]
