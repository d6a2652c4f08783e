"""The gateway service: subscribes once to the device topics and dispatches inside.

MQTT session: fixed client id, clean start off and a session expiry, so alarms published while the
gateway restarts wait at the broker. QoS 1 PUBACK is sent only when on_message returns, i.e. after
the alarm is committed; the application ack (``stored``) follows the commit too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from devices import (
    AckStatus,
    AckSubject,
    AlarmAck,
    AlarmCancel,
    AlarmMessage,
    AlarmType,
    DeviceTopic,
    Rejection,
    Topics,
    parse_alarm,
    parse_cancel,
)
from gateway import metrics
from gateway.db import migrate
from gateway.features import Feature, Subscription, default_features
from gateway.forwarder import Forwarder
from gateway.intake import IntakeItem, IntakeWriter, Outcome, Resolution
from trygg import mqtt
from trygg.db import create_engine, session_factory, utcnow
from trygg.http import client_tls
from trygg.secrets import check_service_secrets
from trygg.settings import Settings

log = structlog.get_logger(__name__)

_REJECT_REASONS = {
    Outcome.UNKNOWN_DEVICE: "device is not registered",
    Outcome.RETIRED_DEVICE: "device is retired",
    Outcome.UNKNOWN_ALARM: "no stored alarm with that alarm_id to cancel",
    Outcome.ALARM_ID_REUSED: "alarm_id was already used for a different alarm (other type or ts)",
}


class Gateway:
    def __init__(
        self, settings: Settings, engine: AsyncEngine | None = None, features: Sequence[Feature] | None = None
    ) -> None:
        check_service_secrets(settings, "gateway")  # before anything starts: no default or short secret
        assert settings.intake_token is not None
        self.settings = settings
        self.features: list[Feature] = list(default_features() if features is None else features)
        self._handlers: dict[DeviceTopic, Subscription] = {}
        for feature in self.features:
            for kind, sub in feature.subscriptions().items():
                if kind in self._handlers or kind in (DeviceTopic.ALARM, DeviceTopic.ALARM_CANCEL):
                    raise ValueError(f"topic kind {kind.value!r} is handled twice")
                self._handlers[kind] = sub
        self.topics = Topics(settings.topic_root)
        self._own_engine = engine is None
        self.engine = engine or create_engine(settings.gateway_database_url)
        self.sessions = session_factory(self.engine)
        self._forward_wake = asyncio.Event()
        self.writer = IntakeWriter(
            self.sessions,
            batch_max=settings.intake_batch_max,
            on_commit=self._forward_wake,
            kill_at=settings.fault_kill_at,
        )
        self.forwarder = Forwarder(
            self.sessions,
            receiver_url=settings.receiver_url,
            token=settings.intake_token.get_secret_value(),
            wake=self._forward_wake,
            mark_delivered=self.writer.mark_delivered,
            on_delivered=self._delivered,
            batch_max=settings.forward_batch_max,
            backoff_max_s=settings.forward_backoff_max_s,
            timeout_s=settings.forward_timeout_s,
            verify=client_tls(settings),
        )
        self.client: Any = None
        self.fast_client: Any = None  # QoS 0 floods (heartbeats), when a feature asks for it
        self.connected = asyncio.Event()
        self._stopping = False
        # Hooks for features: is a device's next alarm an installation test; who wants to hear about
        # alarms stored here and confirmed by the receiver.
        self.is_test_alarm: Callable[[str], bool] = lambda device_id: False
        self.stored_listeners: list[Callable[[str, str, bool], None]] = []
        self.delivered_listeners: list[Callable[[str, str, str], None]] = []

    async def start(self, *, run_migrations: bool = True) -> None:
        if run_migrations:
            await migrate(self.engine)
        self.writer.start()
        self.forwarder.start()
        for feature in self.features:
            await feature.start(self)
        s = self.settings
        self.client = mqtt.make_client(
            s.gateway_client_id,
            persistent=True,
            session_expiry_s=s.gateway_session_expiry_s,
            on_message=self._on_message,
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        endpoint = mqtt.MqttEndpoint.from_url(
            s.mqtt_url,
            s.gateway_mqtt_username,
            s.gateway_mqtt_password.get_secret_value() if s.gateway_mqtt_password else None,
            ca_file=s.mqtt_ca_file,
        )
        await mqtt.connect(self.client, endpoint, protocol=self.settings.mqtt_protocol)
        await asyncio.wait_for(self.connected.wait(), 10)
        if any(sub.fast is not None for sub in self._handlers.values()):
            self.fast_client = mqtt.make_client(f"{s.gateway_client_id}-fast", persistent=False)
            self.fast_client.on_message = self._on_fast_message
            self.fast_client.on_connect = self._on_fast_connect
            await mqtt.connect(self.fast_client, endpoint, protocol=self.settings.mqtt_protocol)
        log.info("gateway started", broker=f"{endpoint.host}:{endpoint.port}", receiver=s.receiver_url)

    async def stop(self) -> None:
        self._stopping = True
        # Features first, while the broker connection is up: a camera is told its look ended, state is flushed.
        for feature in reversed(self.features):
            try:
                await feature.stop()
            except Exception as exc:
                log.error("feature did not stop cleanly", feature=feature.name, error=str(exc))
        for client in (self.fast_client, self.client):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.disconnect(), 5)
            except Exception as exc:
                log.warning("disconnect from broker failed", error=str(exc))
        await self.forwarder.stop()
        await self.writer.stop()
        if self._own_engine:
            await self.engine.dispose()
        log.info("gateway stopped")

    # --- MQTT callbacks -------------------------------------------------------------------------------
    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        for kind in (DeviceTopic.ALARM, DeviceTopic.ALARM_CANCEL):
            client.subscribe(self.topics.all_devices(kind), qos=1)
        for kind, sub in self._handlers.items():
            if sub.handler is not None:
                client.subscribe(self.topics.all_devices(kind), qos=sub.qos)
        metrics.MQTT_CONNECTED.set(1)
        self.connected.set()
        log.info("connected to broker", session_present=bool(flags))
        for feature in self.features:
            try:
                feature.on_connected()
            except Exception as exc:
                log.error("feature failed on reconnect", feature=feature.name, error=str(exc))

    def _on_fast_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        for kind, sub in self._handlers.items():
            if sub.fast is not None:
                client.subscribe(self.topics.all_devices(kind), qos=0)

    def _on_fast_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> None:
        """Inline (no task per message) for QoS 0 floods; never raises."""
        parsed = self.topics.parse(topic)
        sub = self._handlers.get(parsed[1]) if parsed is not None else None
        if parsed is None or sub is None or sub.fast is None:
            metrics.REJECTED.labels("bad_topic").inc()
            return
        device_id, kind = parsed
        metrics.message_counter(kind.value).inc()
        if len(payload) > self.settings.max_payload_bytes:
            metrics.REJECTED.labels("oversize").inc()
            return
        try:
            sub.fast(device_id, payload)
        except Exception as exc:
            metrics.REJECTED.labels("handler_error").inc()
            log.exception("fast topic handler failed", device_id=device_id, topic=kind.value, error=str(exc))

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        metrics.MQTT_CONNECTED.set(0)
        self.connected.clear()
        if self._stopping:
            log.info("disconnected from broker (stopping)")
        else:
            log.warning("disconnected from broker; reconnecting")

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        """Runs as its own task per message; returning sends the PUBACK. Never raises."""
        parsed = self.topics.parse(topic)
        if parsed is None:
            metrics.REJECTED.labels("bad_topic").inc()
            log.warning("message on unexpected topic", topic=topic)
            return 0
        device_id, kind = parsed
        metrics.message_counter(kind.value).inc()
        max_bytes = self.settings.max_payload_bytes
        message: AlarmMessage | AlarmCancel | Rejection
        if kind is DeviceTopic.ALARM:
            message = parse_alarm(device_id, payload, max_bytes)
        elif kind is DeviceTopic.ALARM_CANCEL:
            message = parse_cancel(device_id, payload, max_bytes)
        elif (sub := self._handlers.get(kind)) is not None and sub.handler is not None:
            if len(payload) > max_bytes:
                metrics.REJECTED.labels("oversize").inc()
                log.warning("device message rejected", device_id=device_id, code="oversize", topic=kind.value)
                return 0
            try:
                await sub.handler(device_id, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a feature's bug must not take the connection down
                metrics.REJECTED.labels("handler_error").inc()
                log.exception("topic handler failed", device_id=device_id, topic=kind.value, error=str(exc))
            return 0
        else:
            return 0
        subject = AckSubject.ALARM if kind is DeviceTopic.ALARM else AckSubject.CANCEL
        if isinstance(message, Rejection):
            self._reject(device_id, message, subject)
            return 0
        # Shutting down cancels this wait: the CancelledError propagates, gmqtt sends no PUBACK, and the
        # broker delivers the message again to the next gateway session (the device resends too).
        is_test = kind is DeviceTopic.ALARM and self.is_test_alarm(device_id)
        outcome = await self.writer.submit(IntakeItem(device_id, message, is_test=is_test))
        self._answer(device_id, message.alarm_id, outcome, subject)
        if outcome is Outcome.STORED:
            for listener in self.stored_listeners:
                listener(device_id, message.alarm_id, is_test)
        return 0

    def _delivered(self, rows: Sequence[tuple[str, str, str]]) -> None:
        for kind, device_id, alarm_id in rows:
            for listener in self.delivered_listeners:
                listener(kind, device_id, alarm_id)

    # --- answers to devices ---------------------------------------------------------------------------
    def _answer(self, device_id: str, alarm_id: str, outcome: Outcome, subject: AckSubject) -> None:
        if outcome in (Outcome.STORED, Outcome.DUPLICATE):
            if outcome is Outcome.STORED:
                metrics.ALARMS_STORED.inc()
                log.info("alarm stored", device_id=device_id, alarm_id=alarm_id)
            else:
                metrics.DUPLICATES.inc()
                log.info("duplicate alarm answered again", device_id=device_id, alarm_id=alarm_id)
            self.publish_ack(device_id, AlarmAck(alarm_id=alarm_id, status=AckStatus.STORED))
        elif outcome in (Outcome.CANCELLED, Outcome.CANCEL_DUPLICATE):
            log.info("alarm cancel stored", device_id=device_id, alarm_id=alarm_id)
            self.publish_ack(
                device_id, AlarmAck(alarm_id=alarm_id, status=AckStatus.CANCELLED, subject=AckSubject.CANCEL)
            )
        else:
            self._reject(device_id, Rejection(_REJECT_REASONS[outcome], outcome.value, alarm_id), subject)

    def _reject(self, device_id: str, rejection: Rejection, subject: AckSubject) -> None:
        metrics.REJECTED.labels(rejection.code).inc()
        log.warning(
            "device message rejected",
            device_id=device_id,
            code=rejection.code,
            reason=rejection.reason,
            alarm_id=rejection.alarm_id,
        )
        if rejection.alarm_id is not None:
            ack = AlarmAck(
                alarm_id=rejection.alarm_id,
                status=AckStatus.REJECTED,
                subject=subject,
                code=rejection.code,
                reason=rejection.reason,
            )
            self.publish_ack(device_id, ack)

    # --- services for features ------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Publish, or log and count why not; never hides a failed publish."""
        try:
            self.client.publish(topic, payload, qos=qos, retain=retain)
        except Exception as exc:
            metrics.PUBLISH_FAILED.inc()
            log.error("publish failed", topic=topic, error=str(exc) or type(exc).__name__)
            return False
        return True

    async def raise_alarm(
        self,
        device_id: str,
        alarm_id: str,
        alarm_type: AlarmType,
        *,
        priority: int | None = None,
        text: str | None = None,
        is_test: bool = False,
        **details: Any,
    ) -> Outcome:
        """A gateway-raised alarm or task (technical alarm, check-in due, patrol visit) on the durable path."""
        payload: dict[str, Any] = {"alarm_id": alarm_id, "type": alarm_type.value, "ts": utcnow().isoformat()}
        if priority is not None:
            payload["priority"] = priority
        if text is not None:
            payload["text"] = text[:1024]
        if is_test:
            payload["is_test"] = True
        payload.update(details)
        message = AlarmMessage.model_validate_json(json.dumps(payload, default=str))
        outcome = await self.writer.submit(IntakeItem(device_id, message))
        log.info(
            "gateway raised alarm", device_id=device_id, alarm_id=alarm_id, type=alarm_type.value, outcome=outcome.value
        )
        return outcome

    async def resolve_alarm(
        self,
        device_id: str,
        alarm_id: str,
        outcome: str,
        actor: str = "gateway",
        *,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Outcome:
        """Close, on the durable path, an alarm the gateway raised itself. ``outcome`` is English for API users;
        ``code`` with ``params`` is what the console shows (docs/api.md)."""
        return await self.writer.submit(IntakeItem(device_id, Resolution(alarm_id, outcome, actor, code, params)))

    def publish_ack(self, device_id: str, ack: AlarmAck) -> None:
        topic = self.topics.device(device_id, DeviceTopic.ALARM_ACK)
        # On failure (not connected) publish() logs and counts it; the device resends and gets its answer then.
        if self.publish(topic, ack.model_dump_json(exclude_none=True).encode(), qos=1):
            metrics.ACKS_PUBLISHED.labels(ack.status.value).inc()
        else:
            metrics.ACK_PUBLISH_FAILED.inc()
