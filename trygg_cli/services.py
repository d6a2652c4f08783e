"""``trygg gateway``, ``trygg receiver``: each service on its own, served by uvicorn in this process.

A service refuses to start with a missing, short or published secret (``trygg.secrets``): exit code 2 and a
message naming each setting.
"""

from __future__ import annotations

from trygg.secrets import InsecureSecret
from trygg.serve import service_server
from trygg_cli.common import fail, run, settings


def gateway() -> None:
    """Run the gateway: MQTT intake, durable store, forwarder to the receiver."""
    from gateway.app import create_app

    s = settings()
    try:
        app = create_app(s)
    except InsecureSecret as exc:
        raise fail(f"error: {exc}", 2) from None
    run(service_server(app, s, "gateway").serve())


def receiver() -> None:
    """Run the alarm receiver: the patrol queue, its API and live feed."""
    from alarm_receiver.app import create_app

    s = settings()
    try:
        app = create_app(s)
    except InsecureSecret as exc:
        raise fail(f"error: {exc}", 2) from None
    run(service_server(app, s, "receiver").serve())
