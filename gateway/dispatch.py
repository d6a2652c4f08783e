"""The one dispatch table: every device topic kind the gateway handles, and the handler it goes to.

The core's own kinds (``alarm``, ``alarm/cancel``, ``heartbeat``, ``status``: the MQTT device contract in
``gateway/protocols/mqtt.py``) and the features' kinds (camera signaling, ...) are entries of the same table. The
gateway subscribes once per kind (``{root}/devices/+/{kind}``) and dispatches inside: QoS 1 kinds on the main,
persistent connection, each message its own task whose return sends the PUBACK; ``fast`` kinds inline on a
second QoS 0 connection.

A message is checked once here for what every kind shares (a device topic under our root, the payload size)
and then belongs to its handler. A handler that raises does not take the connection down: the failure is counted
and logged, and the PUBACK is sent; shutdown (``CancelledError``) sends none, so the broker delivers the
message again to the next session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from devices import DeviceTopic, Topics
from gateway import metrics
from gateway.features import Subscription
from trygg.mqtt import Message, MqttConnection

log = structlog.get_logger(__name__)


class Dispatcher:
    def __init__(self, topics: Topics, max_payload_bytes: int) -> None:
        self._topics = topics
        self._max_bytes = max_payload_bytes
        self._routes: dict[DeviceTopic, Subscription] = {}

    def add(self, routes: Mapping[DeviceTopic, Subscription]) -> None:
        """Add entries to the table; a kind has exactly one handler."""
        for kind, route in routes.items():
            if kind in self._routes:
                raise ValueError(f"topic kind {kind.value!r} is handled twice")
            if (route.handler is None) == (route.fast is None):
                raise ValueError(f"topic kind {kind.value!r} needs either a handler or a fast handler")
            self._routes[kind] = route

    @property
    def has_fast(self) -> bool:
        return any(route.fast is not None for route in self._routes.values())

    def kinds(self) -> list[DeviceTopic]:
        return list(self._routes)

    def subscribe_main(self, main: MqttConnection) -> None:
        """Subscribe the main connection to its kinds; on every (re)connect."""
        for kind, route in self._routes.items():
            if route.handler is not None:
                main.subscribe(self._topics.all_devices(kind), qos=route.qos)

    def subscribe_fast(self, fast: MqttConnection) -> None:
        """Subscribe the QoS 0 connection to the fast kinds; on every (re)connect."""
        for kind, route in self._routes.items():
            if route.fast is not None:
                fast.subscribe(self._topics.all_devices(kind), qos=0)

    def _route(self, message: Message) -> tuple[str, DeviceTopic, Subscription] | None:
        parsed = self._topics.parse(message.topic)
        route = self._routes.get(parsed[1]) if parsed is not None else None
        if parsed is None or route is None:
            metrics.REJECTED.labels("bad_topic").inc()
            log.warning("message on unexpected topic", topic=message.topic[:256])
            return None
        device_id, kind = parsed
        metrics.message_counter(kind.value).inc()
        if len(message.payload) > self._max_bytes:
            metrics.REJECTED.labels("oversize").inc()
            log.warning(
                "device message rejected",
                device_id=device_id,
                code="oversize",
                topic=kind.value,
                reason=f"payload is {len(message.payload)} bytes, over the {self._max_bytes} byte limit",
            )
            return None
        return device_id, kind, route

    async def on_message(self, message: Message) -> None:
        """The main connection's handler: one task per message; returning sends the PUBACK."""
        routed = self._route(message)
        if routed is None:
            return
        device_id, kind, route = routed
        if route.handler is None:
            return
        try:
            # No await before this call: handlers hand alarms to the intake writer in arrival order.
            await route.handler(device_id, message.payload)
        except asyncio.CancelledError:
            raise  # shutting down: no PUBACK, the broker delivers it again
        except Exception as exc:  # a handler's bug must not take the connection down
            metrics.REJECTED.labels("handler_error").inc()
            log.exception("topic handler failed", device_id=device_id, topic=kind.value, error=str(exc))

    def on_inline(self, message: Message) -> None:
        """The fast connection's handler: inline, no task per message; never raises."""
        routed = self._route(message)
        if routed is None:
            return
        device_id, kind, route = routed
        if route.fast is None:
            return
        try:
            route.fast(device_id, message.payload)
        except Exception as exc:
            metrics.REJECTED.labels("handler_error").inc()
            log.exception("fast topic handler failed", device_id=device_id, topic=kind.value, error=str(exc))
