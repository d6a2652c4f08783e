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
from devices.types import DEFAULT_PRIORITY, AlarmType, DeviceStatus, DeviceType
from devices.validation import Rejection, parse_alarm, parse_cancel

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_ROOT",
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
    "parse_alarm",
    "parse_cancel",
]
