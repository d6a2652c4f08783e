"""The device contract v1 over MQTT: ``alarm``, ``alarm/cancel``, ``heartbeat`` and ``status`` from devices, and
the answers on ``alarm/ack``.

Validation is the contract's (``devices/validation.py``, which never raises); an alarm or a cancel goes to the
port's durable path and is answered from its outcome, after the commit (the handler returns after that too, so the
broker's PUBACK follows the commit). Rejections are logged with their code (never the payload's text), counted
(``trygg_gateway_rejected_total{code}``), answered ``rejected`` whenever an ``alarm_id`` can be read, and the
message is kept as a dead letter before it is acknowledged. Heartbeats and status messages go to whoever
supervises (``report_heartbeat``/``report_status``); they are subscribed to only when someone listens.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from devices import (
    AckStatus,
    AckSubject,
    AlarmAck,
    AlarmMessage,
    DeviceTopic,
    Rejection,
    parse_alarm,
    parse_cancel,
    parse_heartbeat,
    parse_status,
)
from gateway import metrics
from gateway.features import Subscription
from gateway.port import GatewayPort
from gateway.records import Letter, Outcome, Received

log = structlog.get_logger(__name__)

REJECT_REASONS = {
    Outcome.UNKNOWN_DEVICE: "device is not registered",
    Outcome.RETIRED_DEVICE: "device is retired",
    Outcome.UNKNOWN_ALARM: "no stored alarm with that alarm_id to cancel",
    Outcome.ALARM_ID_REUSED: "alarm_id was already used for a different alarm (other type or ts)",
    Outcome.UNSTORABLE: "the gateway could not store this message; it is kept for a technician",
}


class MqttContract:
    """The MQTT protocol adapter: the contract's topics in, answers out, through the port."""

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        self._max_bytes = port.settings.max_payload_bytes

    def subscriptions(self, *, heartbeats: bool, statuses: bool) -> Mapping[DeviceTopic, Subscription]:
        """Its entries of the dispatch table; ``heartbeat``/``status`` only when someone supervises."""
        routes = {
            DeviceTopic.ALARM: Subscription(self._alarm, qos=1, shared=True),
            DeviceTopic.ALARM_CANCEL: Subscription(self._cancel, qos=1, shared=True),
        }
        if heartbeats:
            routes[DeviceTopic.HEARTBEAT] = Subscription(fast=self._heartbeat, qos=0, shared=True)
        if statuses:
            routes[DeviceTopic.STATUS] = Subscription(self._status, qos=1)
        return routes

    # --- device -> gateway ----------------------------------------------------------------------------------
    async def _alarm(self, device_id: str, payload: bytes) -> None:
        await self._submit(device_id, payload, DeviceTopic.ALARM)

    async def _cancel(self, device_id: str, payload: bytes) -> None:
        await self._submit(device_id, payload, DeviceTopic.ALARM_CANCEL)

    async def _submit(self, device_id: str, payload: bytes, kind: DeviceTopic) -> None:
        """An alarm or a cancel: parsed, submitted, answered from the outcome after the commit (or refused)."""
        received = Received(self.port.topics.device(device_id, kind), payload)
        subject = AckSubject.ALARM if kind is DeviceTopic.ALARM else AckSubject.CANCEL
        message = (parse_alarm if kind is DeviceTopic.ALARM else parse_cancel)(device_id, payload, self._max_bytes)
        if isinstance(message, Rejection):
            self.reject(device_id, message, subject)
            await self._keep(device_id, kind, received, message)
            return
        # Shutting down cancels this wait: no PUBACK, the broker delivers the message again (the device resends).
        if isinstance(message, AlarmMessage):
            outcome = await self.port.submit_alarm(device_id, message, received)
        else:
            outcome = await self.port.submit_cancel(device_id, message, received)
        self._answer(device_id, message.alarm_id, outcome, subject)

    def _heartbeat(self, device_id: str, payload: bytes) -> None:
        """Inline on the fast connection (thousands a second): validate, hand over. A bad heartbeat is counted
        and logged, not kept: heartbeats are loss-tolerant and come in floods."""
        heartbeat = parse_heartbeat(payload, self._max_bytes)
        if isinstance(heartbeat, Rejection):
            metrics.REJECTED.labels("invalid_heartbeat").inc()
            log.warning("heartbeat rejected", device_id=device_id, reason=heartbeat.reason)
            return
        self.port.report_heartbeat(device_id, heartbeat)

    async def _status(self, device_id: str, payload: bytes) -> None:
        status = parse_status(payload)
        if isinstance(status, Rejection):
            metrics.REJECTED.labels(status.code).inc()
            received = Received(self.port.topics.device(device_id, DeviceTopic.STATUS), payload)
            await self._keep(device_id, DeviceTopic.STATUS, received, status)
            return
        await self.port.report_status(device_id, status)

    async def _keep(self, device_id: str, kind: DeviceTopic, received: Received, rejection: Rejection) -> None:
        await self.port.keep_dead_letter(Letter(received, rejection.code, rejection.reason, device_id, kind.value))

    # --- gateway -> device ----------------------------------------------------------------------------------
    def _answer(self, device_id: str, alarm_id: str, outcome: Outcome, subject: AckSubject) -> None:
        if outcome is Outcome.UNKNOWN_ALARM and self.port.settings.mqtt_shared_group:
            # Several gateways: a cancel can reach one gateway before its alarm is committed through another.
            # No answer, so the device resends it (it keeps a cancel until "cancelled"): it finds the alarm then.
            metrics.CANCELS_UNANSWERED.inc()
            log.warning("cancel of an alarm not stored (yet): not answered, the device resends", device_id=device_id)
            return
        if outcome in (Outcome.STORED, Outcome.DUPLICATE):
            self.publish_ack(device_id, AlarmAck(alarm_id=alarm_id, status=AckStatus.STORED))
        elif outcome in (Outcome.CANCELLED, Outcome.CANCEL_DUPLICATE):
            log.info("alarm cancel stored", device_id=device_id, alarm_id=alarm_id)
            self.publish_ack(
                device_id, AlarmAck(alarm_id=alarm_id, status=AckStatus.CANCELLED, subject=AckSubject.CANCEL)
            )
        else:
            self.reject(device_id, Rejection(REJECT_REASONS[outcome], outcome.value, alarm_id), subject)

    def reject(self, device_id: str, rejection: Rejection, subject: AckSubject) -> None:
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

    def publish_ack(self, device_id: str, ack: AlarmAck) -> None:
        topic = self.port.topics.device(device_id, DeviceTopic.ALARM_ACK)
        # On failure (not connected) publish() logs and counts it; the device resends and gets its answer then.
        if self.port.publish(topic, ack.model_dump_json(exclude_none=True).encode(), qos=1):
            metrics.ACKS_PUBLISHED.labels(ack.status.value).inc()
        else:
            metrics.ACK_PUBLISH_FAILED.inc()
