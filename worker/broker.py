"""Connections to the broker, with the options every connection of ours needs.

RabbitMQ connections get heartbeats (the consume loop checks them about once a second) and
publisher confirms with a timeout, so that a publish can never hang forever on a dead broker.
The embedded default, kombu's ``filesystem://`` transport in a local folder, needs its folders
made; it has no confirms, no redelivery of a message read but not acked, and polls about once a
second — enough for a laptop, not for production.
"""

from __future__ import annotations

import pathlib
import urllib.parse

from kombu import Connection

from worker.config import Settings

HEARTBEAT_SECONDS = 30
CONFIRM_TIMEOUT_SECONDS = 15.0
CONNECT_TIMEOUT_SECONDS = 10.0


def is_embedded(broker_url: str) -> bool:
    return broker_url.startswith("filesystem://")


def connect(settings: Settings) -> Connection:
    """A (lazy) kombu connection to ``BROKER_URL``; call ``ensure_connection`` to open it."""
    url = settings.broker_url
    if is_embedded(url):
        folder = embedded_folder(url)
        folder.mkdir(parents=True, exist_ok=True)
        return Connection(
            "filesystem://localhost/",
            transport_options={
                "data_folder_in": str(folder),
                "data_folder_out": str(folder),
                "control_folder": str(folder / "control"),
                "polling_interval": 0.1,
            },
        )
    return Connection(
        url,
        heartbeat=HEARTBEAT_SECONDS,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        transport_options={"confirm_publish": True},
    )


def embedded_folder(broker_url: str) -> pathlib.Path:
    """``filesystem:///var/broker`` is ``var/broker`` under the working directory;
    ``filesystem:////srv/broker`` is the absolute ``/srv/broker``."""
    path = urllib.parse.urlparse(broker_url).path
    return pathlib.Path(path[1:] if path.startswith("/") else path or "var/broker")
