"""Turns raw MQTT payloads into contract models, or a rejection with a reason. Never raises."""

import json
import re
from dataclasses import dataclass

from pydantic import ValidationError

from devices.messages import MAX_PAYLOAD_BYTES, AlarmCancel, AlarmMessage
from devices.types import DEVICE_ALARM_TYPES

_ALARM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload was refused. ``alarm_id`` is set when one could be read, so the device can be told."""

    reason: str
    code: str
    alarm_id: str | None = None


def _readable_alarm_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        value = obj.get("alarm_id")
        if isinstance(value, str) and _ALARM_ID_RE.match(value):
            return value
    return None


def _load(payload: bytes, max_bytes: int) -> dict[str, object] | Rejection:
    if len(payload) > max_bytes:
        return Rejection(f"payload is {len(payload)} bytes, over the {max_bytes} byte limit", "oversize")
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return Rejection("payload is not JSON", "not_json")
    if not isinstance(obj, dict):
        return Rejection("payload is not a JSON object", "not_object")
    return obj


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _check_device(model_device_id: str | None, topic_device_id: str, alarm_id: str) -> Rejection | None:
    if model_device_id is not None and model_device_id != topic_device_id:
        return Rejection(
            f"device_id {model_device_id!r} in payload differs from topic device {topic_device_id!r}",
            "device_mismatch",
            alarm_id,
        )
    return None


def parse_alarm(topic_device_id: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> AlarmMessage | Rejection:
    loaded = _load(payload, max_bytes)
    if isinstance(loaded, Rejection):
        return loaded
    try:
        alarm = AlarmMessage.model_validate_json(payload)
    except ValidationError as exc:
        return Rejection(_errors(exc), "invalid", _readable_alarm_id(loaded))
    if alarm.type not in DEVICE_ALARM_TYPES:
        return Rejection(f"alarm type {alarm.type.value!r} is raised by the gateway only", "invalid", alarm.alarm_id)
    return _check_device(alarm.device_id, topic_device_id, alarm.alarm_id) or alarm


def parse_cancel(topic_device_id: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> AlarmCancel | Rejection:
    loaded = _load(payload, max_bytes)
    if isinstance(loaded, Rejection):
        return loaded
    try:
        cancel = AlarmCancel.model_validate_json(payload)
    except ValidationError as exc:
        return Rejection(_errors(exc), "invalid", _readable_alarm_id(loaded))
    return _check_device(cancel.device_id, topic_device_id, cancel.alarm_id) or cancel
