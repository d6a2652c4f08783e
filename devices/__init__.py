"""The Trygg device contract, version 1: topics, payload models, device and alarm types.

Pure data and validation; no I/O. Imported by the gateway, the simulators and device makers.
The prose version is docs/contract.md.
"""

from devices.messages import (
    MAX_PAYLOAD_BYTES,
    AckStatus,
    AckSubject,
    AlarmAck,
    AlarmCancel,
    AlarmMessage,
    DeviceConfig,
    Heartbeat,
    Location,
)
from devices.topics import DEFAULT_ROOT, DeviceTopic, Topics
from devices.types import (
    DEFAULT_PRIORITY,
    LIFE_SAFETY_TYPES,
    AlarmType,
    DeviceStatus,
    DeviceType,
    effective_priority,
)
from devices.validation import Rejection, parse_alarm, parse_cancel, parse_heartbeat, parse_model, parse_status

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_ROOT",
    "LIFE_SAFETY_TYPES",
    "MAX_PAYLOAD_BYTES",
    "AckStatus",
    "AckSubject",
    "AlarmAck",
    "AlarmCancel",
    "AlarmMessage",
    "AlarmType",
    "DeviceConfig",
    "DeviceStatus",
    "DeviceTopic",
    "DeviceType",
    "Heartbeat",
    "Location",
    "Rejection",
    "Topics",
    "effective_priority",
    "parse_alarm",
    "parse_cancel",
    "parse_heartbeat",
    "parse_model",
    "parse_status",
]
