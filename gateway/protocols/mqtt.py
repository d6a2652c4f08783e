"""The device contract v1 over MQTT: ``alarm``, ``alarm/cancel``, ``heartbeat`` and ``status`` from devices, and
the answers on ``alarm/ack``.

Validation is the contract's (``devices/validation.py``); an alarm or a cancel goes to the port's durable path and
is answered from its outcome, after the commit (the handler returns after that too, so the broker's PUBACK follows
the commit). Rejections are logged with their code, counted (``trygg_gateway_rejected_total{code}``) and answered
``rejected`` whenever an ``alarm_id`` can be read. Heartbeats and status messages go to whoever supervises
(``report_heartbeat``/``report_status``); they are subscribed to only when someone listens.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from pydantic import ValidationError

from devices import (
    AckStatus,
    AckSubject,
    AlarmAck,
    DeviceStatus,
    DeviceTopic,
    Heartbeat,
    Rejection,
    parse_alarm,
    parse_cancel,
)
from gateway import metrics
from gateway.features import Subscription
from gateway.intake import Outcome
from gateway.port import GatewayPort

log = structlog.get_logger(__name__)

REJECT_REASONS = {
    Outcome.UNKNOWN_DEVICE: "device is not registered",
    Outcome.RETIRED_DEVICE: "device is retired",
    Outcome.UNKNOWN_ALARM: "no stored alarm with that alarm_id to cancel",
    Outcome.ALARM_ID_REUSED: "alarm_id was already used for a different alarm (other type or ts)",
}


class MqttContract:
    """The MQTT protocol adapter: the contract's topics in, answers out, through the port."""

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        self._max_bytes = port.settings.max_payload_bytes

    def subscriptions(self, *, heartbeats: bool, statuses: bool) -> Mapping[DeviceTopic, Subscription]:
        """Its entries of the dispatch table; ``heartbeat``/``status`` only when someone supervises."""
        routes = {
            DeviceTopic.ALARM: Subscription(self._alarm, qos=1),
            DeviceTopic.ALARM_CANCEL: Subscription(self._cancel, qos=1),
        }
        if heartbeats:
            routes[DeviceTopic.HEARTBEAT] = Subscription(fast=self._heartbeat, qos=0)
        if statuses:
            routes[DeviceTopic.STATUS] = Subscription(self._status, qos=1)
        return routes

    # --- device -> gateway ----------------------------------------------------------------------------------
    async def _alarm(self, device_id: str, payload: bytes) -> None:
        message = parse_alarm(device_id, payload, self._max_bytes)
        if isinstance(message, Rejection):
            self.reject(device_id, message, AckSubject.ALARM)
            return
        # Shutting down cancels this wait: no PUBACK, the broker delivers the message again (the device resends).
        outcome = await self.port.submit_alarm(device_id, message)
        self._answer(device_id, message.alarm_id, outcome, AckSubject.ALARM)

    async def _cancel(self, device_id: str, payload: bytes) -> None:
        message = parse_cancel(device_id, payload, self._max_bytes)
        if isinstance(message, Rejection):
            self.reject(device_id, message, AckSubject.CANCEL)
            return
        outcome = await self.port.submit_cancel(device_id, message)
        self._answer(device_id, message.alarm_id, outcome, AckSubject.CANCEL)

    def _heartbeat(self, device_id: str, payload: bytes) -> None:
        """Inline on the fast connection (thousands a second): validate, hand over."""
        try:
            heartbeat = Heartbeat.model_validate_json(payload)
        except ValidationError as exc:
            metrics.REJECTED.labels("invalid_heartbeat").inc()
            log.warning("heartbeat rejected", device_id=device_id, reason=str(exc.errors()[0]["msg"]))
            return
        self.port.report_heartbeat(device_id, heartbeat)

    async def _status(self, device_id: str, payload: bytes) -> None:
        text = payload.decode(errors="replace").strip().lower()
        if text not in (DeviceStatus.ONLINE, DeviceStatus.OFFLINE):
            metrics.REJECTED.labels("invalid_status").inc()
            return
        await self.port.report_status(device_id, DeviceStatus(text))

    # --- gateway -> device ----------------------------------------------------------------------------------
    def _answer(self, device_id: str, alarm_id: str, outcome: Outcome, subject: AckSubject) -> None:
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
