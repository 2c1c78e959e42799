"""The worker process: its threads, and how it starts and stops.

- the main thread consumes requests (intake);
- ``HTTP_CONCURRENCY`` step threads create campaigns and fetch reports;
- a relay thread publishes the outbox;
- a housekeeping thread beats the worker's heartbeat and settles dead workers' rows.

SIGTERM/SIGINT stop intake at once — also while the broker cannot be reached, between two
connection tries — let the step threads finish the call they are in (bounded by
HTTP_CALL_DEADLINE_SECONDS), publish what is pending if the broker is there, and exit 0. A
worker that loses its liveness lock exits 3; a SQLite worker whose database file vanished
exits 4.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable

from adapters import broker, error_reporting, metrics
from adapters.config import (
    Settings,
    describe_broker,
    describe_queues,
    describe_store,
    without_password,
)
from adapters.liveness import Liveness, hold_liveness
from adapters.logs import configure_logging, secrets_from, state_change
from adapters.store import Store, open_store
from handlers.accept import Verdict
from handlers.context import StepContext
from handlers.create import create_next
from handlers.orphans import settle_orphans
from handlers.platform_watch import PlatformWatch, WatchedPlatform
from handlers.relay import Relay
from handlers.report import report_next
from worker import __version__
from worker.consumer import RequestConsumer

log = logging.getLogger("callbridge.worker")

IDLE_WAIT_SECONDS = 1.0
HOUSEKEEPING_SECONDS = 2.0
LOOP_ERROR_PAUSE_SECONDS = 2.0
EXIT_LOST_LIVENESS = 3
EXIT_STORE_GONE = 4
# What a step thread may take beyond its call's deadline to settle it, at shutdown.
SETTLE_SECONDS = 5.0


class Worker:
    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self.stopping = threading.Event()
        self.work_ready = threading.Event()
        self.exit_code = 0
        self.platform_watch = PlatformWatch()
        owner = store.register_worker(hostname=socket.gethostname(), pid=os.getpid())
        try:
            self.liveness: Liveness = hold_liveness(store, owner)
        except Exception:
            store.unregister_worker(owner)
            raise
        self.ctx = StepContext(
            settings=settings, store=store, platform=self._platform_client(), owner=owner
        )
        self.consumer = RequestConsumer(
            broker.connect(settings),
            settings=settings,
            store=store,
            on_verdict=self._on_verdict,
            stopping=self.stopping,
        )
        self.relay = Relay(
            store, broker.connect(settings), ready=self.ctx.outbox_ready, settings=settings
        )

    # -- running -------------------------------------------------------------------------

    def run(self) -> int:
        settled = settle_orphans(self.ctx, self.liveness)
        state_change(
            log,
            "worker started",
            request_id=None,
            worker=self.ctx.owner,
            version=__version__,
            orphans_settled=settled,
            broker=describe_broker(self.settings.broker_url),
            store=describe_store(self.settings.database_url),
            platform=without_password(self.settings.is74_api_url),
            queues=describe_queues(self.settings),
        )
        threads = [
            self._thread("relay", lambda: self.relay.run(self.stopping.is_set)),
            self._thread("housekeeping", self._housekeeping),
            *(
                self._thread(f"step-{n}", self._steps, self._thread_context())
                for n in range(self.settings.http_concurrency)
            ),
        ]
        self.consumer.run()
        self._shutdown(threads)
        return self.exit_code

    def stop(self, *_signal_args: object) -> None:
        """Stop intake now; everything else winds down in ``run``."""
        self.stopping.set()
        self.work_ready.set()
        self.ctx.outbox_ready.set()

    def _thread_context(self) -> StepContext:
        """Shares everything but the HTTP session: one per thread."""
        return dataclasses.replace(self.ctx, platform=self._platform_client())

    def _platform_client(self) -> WatchedPlatform:
        return WatchedPlatform(
            self.settings, watch=self.platform_watch, observe=metrics.observe_platform_call
        )

    def _thread(self, name: str, target: Callable[..., None], *args: object) -> threading.Thread:
        thread = threading.Thread(
            target=self._supervised, args=(name, target, *args), name=name, daemon=True
        )
        thread.start()
        return thread

    def _supervised(self, name: str, target: Callable[..., None], *args: object) -> None:
        """Keep a loop alive through unexpected errors: report each, pause, go on."""
        while not self.stopping.is_set():
            try:
                target(*args)
            except Exception as exc:  # reported; the loop must survive
                log.exception("%s loop failed; restarting it", name)
                error_reporting.capture_exception(exc)
                self.stopping.wait(LOOP_ERROR_PAUSE_SECONDS)
            else:
                return

    def _steps(self, ctx: StepContext) -> None:
        while not self.stopping.is_set():
            self.work_ready.clear()
            if create_next(ctx) or report_next(ctx):
                continue
            self.work_ready.wait(ctx.gate.seconds_left() or IDLE_WAIT_SECONDS)

    def _housekeeping(self) -> None:
        while not self.stopping.wait(HOUSEKEEPING_SECONDS):
            if not self.liveness.alive():
                log.critical(
                    "lost the lock that marks this worker alive; stopping so that "
                    "another worker can settle its requests"
                )
                self.exit_code = EXIT_LOST_LIVENESS
                self.stop()
                return
            gone = self.liveness.store_gone()
            if gone is not None:
                log.critical(
                    "%s; stopping: what this worker stores now would be lost. Put the store "
                    "back, or start a worker on a new one (its requests' states are lost)",
                    gone,
                )
                self.exit_code = EXIT_STORE_GONE
                self.stop()
                return
            view = self.platform_watch.view(pause_left=self.ctx.gate.seconds_left())
            self.store.heartbeat(self.ctx.owner, view)
            settle_orphans(self.ctx, self.liveness)

    def _on_verdict(self, verdict: Verdict) -> None:
        if verdict.outcome == "accepted":
            self.work_ready.set()
        elif verdict.outcome == "rejected":
            self.ctx.outbox_ready.set()

    # -- stopping ------------------------------------------------------------------------

    def _publish_before_exit(self) -> None:
        """Publish what the steps stored while stopping, unless the relay could not reach the
        broker lately: that is not waited for again (the events stay queued)."""
        if self.relay.broker_failing:
            log.info("the broker is not reachable: pending events stay queued for the next run")
            return
        try:
            published = self.relay.drain()
        except Exception as exc:  # unsent events stay in the outbox for the next run
            log.warning(
                "could not publish every pending event before exit (%s); they stay queued",
                type(exc).__name__,
            )
        else:
            log.info("published %d pending events before exit", published)

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        self.stop()
        # One budget for all: the step threads' calls run side by side, each cut at its deadline.
        ends_at = time.monotonic() + self.settings.http_call_deadline_seconds + SETTLE_SECONDS
        for thread in threads:
            if thread.name != "relay":
                thread.join(max(0.0, ends_at - time.monotonic()))
        for thread in threads:
            if thread.name == "relay":
                thread.join(10)
        self._publish_before_exit()
        self.store.unregister_worker(self.ctx.owner)
        self.liveness.close()
        error_reporting.flush()
        state_change(log, "worker stopped", request_id=None, worker=self.ctx.owner)


def run(settings: Settings) -> int:
    """``callbridge run``: serve until SIGTERM/SIGINT."""
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        secrets=secrets_from(settings),
    )
    error_reporting.init_sentry(settings, release=__version__)
    store = open_store(settings.database_url, pool_size=settings.http_concurrency + 4)
    store.create_schema()
    if settings.metrics_port:
        metrics.start_metrics_server(settings.metrics_port, stats=store.stats)
    worker = Worker(settings, store)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    return worker.run()
