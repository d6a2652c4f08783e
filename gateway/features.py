"""How the gateway's parts plug in: a feature's device topics and its lifecycle.

A feature (device supervision, the camera relay, check-ins, ...) is built by the composition
(``gateway/service.py``) with the :class:`gateway.port.GatewayPort` in its constructor, and uses nothing else of
the core. It declares the device topic kinds it handles (:meth:`Feature.subscriptions`): they join the one dispatch
table (``gateway/dispatch.py``) next to the core's own (alarm, alarm/cancel, heartbeat, status), so the gateway
subscribes once and dispatches inside. Its HTTP routes live in a routes module of its own package, mounted by
``gateway/app.py``; the routes find the running feature through ``gateway.api.deps.feature``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from devices import DeviceTopic

# (device_id, payload) -> None. Runs as its own task; QoS 1 PUBACK is sent when it returns. A handler that raises
# is counted and logged; the PUBACK is sent all the same.
TopicHandler = Callable[[str, bytes], Awaitable[None]]
# (device_id, payload) -> None, called inline for QoS 0 floods (heartbeats): no task per message. Never block.
FastHandler = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A topic kind's entry in the dispatch table: an async ``handler`` on the gateway's main (persistent, QoS 1)
    connection, or a ``fast`` handler on a separate QoS 0 connection for high-rate, loss-tolerant messages. The
    separate connection also keeps a heartbeat flood from queueing in front of alarms in one TCP stream."""

    handler: TopicHandler | None = None
    qos: int = 1
    fast: FastHandler | None = None
    # Several gateways (``mqtt_shared_group``): a shared kind is an MQTT 5 shared subscription, each message going
    # to one gateway (alarms, cancels, heartbeats); the others reach every gateway (status: the leader acts on it;
    # camera signaling: the gateway holding the session does).
    shared: bool = False


class Feature(Protocol):
    name: str

    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        """Device topic kinds this feature handles (``{root}/devices/+/{kind}``); a kind has one handler."""
        ...

    async def start(self) -> None:
        """Called after the store is migrated and before the broker connection opens."""
        ...

    async def stop(self) -> None: ...

    def on_connected(self) -> None:
        """Called on every (re)connect: re-publish retained state here."""
        ...
