"""The broker topology of the contract: three plain durable queues, no x-arguments.

Declared by every worker at (re)connection; safe for the CRM to declare the same way, since a
queue declared twice with the same arguments is the same queue.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from adapters.config import Settings

DEFAULT_EXCHANGE = Exchange("", type="direct")


def contract_queue(name: str) -> Queue:
    return Queue(
        name,
        exchange=DEFAULT_EXCHANGE,
        routing_key=name,
        durable=True,
        auto_delete=False,
        no_declare=False,
    )


def contract_queues(settings: Settings) -> tuple[Queue, Queue, Queue]:
    """The requests, results and dead-letter queues, in that order."""
    return (
        contract_queue(settings.call_requests_queue),
        contract_queue(settings.call_results_queue),
        contract_queue(settings.dead_letter_queue),
    )


def declare(channel, settings: Settings) -> None:
    for queue in contract_queues(settings):
        queue.bind(channel).declare()
