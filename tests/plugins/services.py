"""Fixtures for the real RabbitMQ and PostgreSQL on the machine (filled in by the worker work)."""
