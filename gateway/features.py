"""How the gateway's parts plug in: each feature has its device topics, background work and HTTP routes.

The core (``gateway/service.py``) owns the MQTT connection, the durable alarm path and the store; a feature
(device supervision, camera check-ins, ...) registers handlers for its own topic kinds and gets the core's
services through ``GatewayCore``. Subscribe once, dispatch inside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fastapi import APIRouter

from devices import DeviceTopic

if TYPE_CHECKING:
    from gateway.service import Gateway

# (device_id, payload) -> None. Runs as its own task; QoS 1 PUBACK is sent when it returns. Never raise.
TopicHandler = Callable[[str, bytes], Awaitable[None]]
# (device_id, payload) -> None, called inline for QoS 0 floods (heartbeats): no task per message. Never block.
FastHandler = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A feature's topic kind: an async ``handler`` on the gateway's main (persistent, QoS 1) connection, or a
    ``fast`` handler on a separate QoS 0 connection for high-rate, loss-tolerant messages. The separate connection
    also keeps a heartbeat flood from queueing in front of alarms in one TCP stream."""

    handler: TopicHandler | None = None
    qos: int = 1
    fast: FastHandler | None = None


class Feature(Protocol):
    name: str

    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        """Device topic kinds this feature handles (``{root}/devices/+/{kind}``)."""
        ...

    def router(self) -> APIRouter | None:
        """Routes mounted under /api/v1 of the gateway's HTTP port, or None."""
        ...

    async def start(self, gateway: Gateway) -> None:
        """Called after the store is migrated and before the MQTT connection opens."""
        ...

    async def stop(self) -> None: ...

    def on_connected(self) -> None:
        """Called on every (re)connect: re-publish retained state here."""
        ...


def default_features() -> list[Feature]:
    """The features ``trygg gateway`` runs."""
    from gateway.checkin.feature import CheckinFeature
    from gateway.checkin.media import CameraRelayFeature
    from gateway.fleet.feature import FleetFeature

    fleet = FleetFeature()
    relay = CameraRelayFeature()
    # The fleet feature owns the devices' status topic; check-ins ask it whether a camera is online.
    return [fleet, relay, CheckinFeature(relay, status_source=fleet.is_online)]
