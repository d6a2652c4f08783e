"""``trygg gateway``, ``trygg receiver``: each service on its own, served by uvicorn in this process."""

from __future__ import annotations

from trygg.serve import server
from trygg_cli.common import run, settings


def gateway() -> None:
    """Run the gateway: MQTT intake, durable store, forwarder to the receiver."""
    from gateway.app import create_app

    s = settings()
    run(server(create_app(s), s.gateway_http_host, s.gateway_http_port).serve())


def receiver() -> None:
    """Run the alarm receiver: the patrol queue, its API and live feed."""
    from alarm_receiver.app import create_app

    s = settings()
    run(server(create_app(s), s.receiver_http_host, s.receiver_http_port).serve())
