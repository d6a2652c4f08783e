"""The one dispatch table: every device topic kind the gateway handles, and the handler it goes to.

The core's own kinds (``alarm``, ``alarm/cancel``, ``heartbeat``, ``status``: the MQTT device contract in
``gateway/protocols/mqtt.py``) and the features' kinds (camera signaling, ...) are entries of the same table. The
gateway subscribes once per kind (``{root}/devices/+/{kind}``) and dispatches inside: QoS 1 kinds on the main,
persistent connection, each message its own task whose return sends the PUBACK; ``fast`` kinds inline on a
second QoS 0 connection.

A message is checked once here for what every kind shares (a device topic under our root, the payload size)
and then belongs to its handler. Whatever happens while handling one message stays with that message:

- the store is down or busy (``gateway.intake.is_transient``): the handler is run again after a backoff, and the
  message is not acknowledged until it went through: it must not be lost;
- anything else the handler raises (a bug, a payload that breaks a parser): the message is counted, logged (its
  kind, size and the exception's type and place; never its text) and kept as a dead letter, then acknowledged;
- shutdown (``CancelledError``): no PUBACK, the broker delivers the message again to the next session.

gmqtt never sends the PUBACK of a message whose handler raised; once the broker's in-flight window (100) is full of
such messages it sends the session nothing more. Nothing a single message does may therefore escape from here.

The bypass (issue 8 point 6, ``flood_bypass``): the broker delivers the main session's messages in order, and only
``gateway_mqtt_receive_maximum`` of them before their PUBACKs, so while one device floods, everyone else's alarm
waits at the broker behind every flood message published before it. A third, clean QoS 0 connection also subscribes
to the alarm topic and sees each alarm as it is published (dropping a flood's copy costs a few microseconds); while
a device is flagged as flooding (:meth:`Dispatcher.on_bypass`), an alarm of any *other* device that arrives there is
taken in at once, ahead of the flood. Nothing depends on it: the main session still gets its own QoS 1 copy of every
alarm, stores it (a duplicate, by the key: stored and shown once, answered ``stored`` again) and acknowledges it; the
bypass only makes the first copy earlier. The intake commits it before the flood's items it holds
(``gateway/intake.py``), and the gateway stops reading the main session until it is committed (``gateway/core.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from devices import DeviceTopic, Rejection, Topics, parse_alarm
from gateway import metrics
from gateway.dead_letters import where
from gateway.features import Subscription, TopicHandler
from gateway.intake import is_transient
from gateway.records import Letter, Received
from trygg.loops import Backoff
from trygg.mqtt import Message, MqttConnection

log = structlog.get_logger(__name__)

# The fast (QoS 0) path cannot wait for a dead letter to be stored; it keeps at most this many a second.
FAST_DEAD_LETTERS_PER_S = 10
# Alarms the bypass takes in at once, at most (each a task); beyond, they come by the main session as before.
BYPASS_TASKS_MAX = 1000


class Dispatcher:
    def __init__(
        self,
        topics: Topics,
        max_payload_bytes: int,
        *,
        keep: Callable[[Letter], Coroutine[Any, Any, None]],
        shared_group: str | None = None,
    ) -> None:
        self._topics = topics
        self._shared_group = shared_group
        self._max_bytes = max_payload_bytes
        self._keep = keep
        self._routes: dict[DeviceTopic, Subscription] = {}
        self._fast_second = 0
        self._fast_kept = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ahead: set[asyncio.Task[None]] = set()
        # Health (gateway/health.py): messages of the main connection being handled, and when one last finished.
        self.handling = 0
        self.last_handled = time.monotonic()

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
                main.subscribe(self.topic_filter(kind, route), qos=route.qos)

    def subscribe_fast(self, fast: MqttConnection) -> None:
        """Subscribe the QoS 0 connection to the fast kinds; on every (re)connect."""
        for kind, route in self._routes.items():
            if route.fast is not None:
                fast.subscribe(self.topic_filter(kind, route), qos=0)

    def topic_filter(self, kind: DeviceTopic, route: Subscription) -> str:
        """``{root}/devices/+/{kind}``, as the shared subscription ``$share/{group}/...`` for a shared kind when
        several gateways share the device topics (``mqtt_shared_group``)."""
        topic = self._topics.all_devices(kind)
        if route.shared and self._shared_group:
            return f"$share/{self._shared_group}/{topic}"
        return topic

    def bypass_filter(self) -> str | None:
        """The bypass connection's subscription (the alarm kind; shared among gateways in a group of its own);
        None when no handler takes alarms."""
        route = self._routes.get(DeviceTopic.ALARM)
        if route is None or route.handler is None:
            return None
        topic = self._topics.all_devices(DeviceTopic.ALARM)
        if route.shared and self._shared_group:
            return f"$share/{self._shared_group}-bypass/{topic}"
        return topic

    async def close(self) -> None:
        for task in self._ahead:
            task.cancel()
        if self._tasks or self._ahead:
            await asyncio.gather(*self._tasks, *self._ahead, return_exceptions=True)

    def _route(self, message: Message) -> tuple[str, DeviceTopic, Subscription] | Letter:
        parsed = self._topics.parse(message.topic)
        route = self._routes.get(parsed[1]) if parsed is not None else None
        if parsed is None or route is None:
            metrics.REJECTED.labels("bad_topic").inc()
            log.warning("message on unexpected topic", topic=message.topic[:256], size=len(message.payload))
            return Letter(Received(message.topic, message.payload), "bad_topic", "not a device topic of this gateway")
        device_id, kind = parsed
        metrics.message_counter(kind.value).inc()
        if len(message.payload) > self._max_bytes:
            reason = f"payload is {len(message.payload)} bytes, over the {self._max_bytes} byte limit"
            metrics.REJECTED.labels("oversize").inc()
            log.warning(
                "device message rejected", device_id=device_id, code="oversize", topic=kind.value, reason=reason
            )
            return Letter(Received(message.topic, message.payload), "oversize", reason, device_id, kind.value)
        return device_id, kind, route

    async def on_message(self, message: Message) -> None:
        """The main connection's handler: one task per message; returning sends the PUBACK."""
        self.handling += 1
        try:
            await self._handle(message)
        finally:
            self.handling -= 1
            self.last_handled = time.monotonic()

    async def _handle(self, message: Message) -> None:
        routed = self._route(message)
        if isinstance(routed, Letter):
            await self._keep(routed)
            return
        device_id, kind, route = routed
        if route.handler is None:
            return
        backoff: Backoff | None = None
        while True:
            try:
                # No await before the first call: handlers hand alarms to the intake writer in arrival order.
                await route.handler(device_id, message.payload)
                return
            except asyncio.CancelledError:
                raise  # shutting down: no PUBACK, the broker delivers it again
            except Exception as exc:
                if not is_transient(exc):
                    await self._keep(self._poison(message, device_id, kind, exc))
                    return
                # the store is down or busy: not this message's fault; keep it unacknowledged and try again
                backoff = backoff or Backoff(0.2, 10.0)
                metrics.HANDLER_RETRIES.labels(kind.value).inc()
                log.warning(
                    "topic handler could not reach the store; retrying",
                    device_id=device_id,
                    topic=kind.value,
                    error=where(exc),
                )
                await asyncio.sleep(backoff.next())

    def on_inline(self, message: Message) -> None:
        """The fast connection's handler: inline, no task per message; never raises."""
        routed = self._route(message)
        if isinstance(routed, Letter):
            self._keep_later(routed)
            return
        device_id, kind, route = routed
        if route.fast is None:
            return
        try:
            route.fast(device_id, message.payload)
        except Exception as exc:
            self._keep_later(self._poison(message, device_id, kind, exc))

    def on_bypass(self, message: Message, flooding: Callable[[str], bool | None]) -> bool:
        """The bypass connection's handler, inline (it sees every alarm, the flood's too: dropping one must cost
        little). ``flooding(device_id)``: True for a device flagged as flooding, False for another device while some
        device floods, None while none does. An alarm is taken in at once only when it is another device's while
        some device floods, and valid; everything else is dropped here, because its own copy comes by the main
        session (which also answers, dead-letters and counts the bad ones). True when taken in."""
        parsed = self._topics.parse(message.topic)
        if parsed is None or parsed[1] is not DeviceTopic.ALARM or len(message.payload) > self._max_bytes:
            return False
        device_id = parsed[0]
        route = self._routes.get(DeviceTopic.ALARM)
        if flooding(device_id) is not False or route is None or route.handler is None:
            return False
        if len(self._ahead) >= BYPASS_TASKS_MAX:
            return False
        if isinstance(parse_alarm(device_id, message.payload, self._max_bytes), Rejection):
            return False
        metrics.BYPASSED.inc()
        log.info("alarm taken in ahead of a flood", device_id=device_id)
        task = asyncio.get_running_loop().create_task(self._take_ahead(route.handler, device_id, message.payload))
        self._ahead.add(task)
        task.add_done_callback(self._ahead.discard)
        return True

    @staticmethod
    async def _take_ahead(handler: TopicHandler, device_id: str, payload: bytes) -> None:
        try:
            await handler(device_id, payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the main session's copy is handled (and kept, if it is poison) as any other
            log.warning(
                "alarm taken in ahead of a flood failed; its main copy follows", device_id=device_id, error=where(exc)
            )

    def _poison(self, message: Message, device_id: str, kind: DeviceTopic, exc: Exception) -> Letter:
        error = where(exc)
        metrics.REJECTED.labels("handler_error").inc()
        log.error(
            "device message could not be handled; kept as a dead letter",
            device_id=device_id,
            topic=kind.value,
            size=len(message.payload),
            error=error,
        )
        return Letter(Received(message.topic, message.payload), "handler_error", error, device_id, kind.value)

    def _keep_later(self, letter: Letter) -> None:
        """The fast path's dead letters: stored without waiting, at most FAST_DEAD_LETTERS_PER_S (a flood of bad
        heartbeats is counted, not written)."""
        second = int(time.monotonic())
        if second != self._fast_second:
            self._fast_second, self._fast_kept = second, 0
        if self._fast_kept >= FAST_DEAD_LETTERS_PER_S:
            return
        self._fast_kept += 1
        task = asyncio.get_running_loop().create_task(self._keep(letter))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
