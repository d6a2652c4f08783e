"""The topic scheme: ``{root}/devices/{device_id}/{kind}`` with root ``trygg/v1`` by default."""

import re
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_ROOT = "trygg/v1"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DeviceTopic(StrEnum):
    ALARM = "alarm"
    ALARM_ACK = "alarm/ack"
    ALARM_CANCEL = "alarm/cancel"
    HEARTBEAT = "heartbeat"
    STATUS = "status"
    CONFIG = "config"
    # Camera check-ins (signaling for the WebRTC look; see docs/contract.md)
    CAMERA_REQUEST = "camera/request"
    CAMERA_ANSWER = "camera/answer"
    CAMERA_END = "camera/end"
    CAMERA_STATE = "camera/state"
    # Voice calls between a base unit and an operator (signalling; see docs/contract.md, section 10)
    VOICE_STATE = "voice/state"
    VOICE_CALL = "voice/call"
    VOICE_REQUEST = "voice/request"
    VOICE_ANSWER = "voice/answer"
    VOICE_END = "voice/end"
    # Digital locks (issue 10; docs/contract.md, "Digital locks")
    LOCK_STATE = "lock/state"
    LOCK_COMMAND = "lock/command"


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds and parses device topics under one root."""

    root: str = DEFAULT_ROOT

    def device(self, device_id: str, kind: DeviceTopic) -> str:
        return f"{self.root}/devices/{device_id}/{kind.value}"

    def all_devices(self, kind: DeviceTopic) -> str:
        """Wildcard filter for one kind of message from every device."""
        return f"{self.root}/devices/+/{kind.value}"

    def parse(self, topic: str) -> tuple[str, DeviceTopic] | None:
        """``(device_id, kind)`` for a device topic under this root, else None."""
        prefix = f"{self.root}/devices/"
        if not topic.startswith(prefix):
            return None
        device_id, sep, rest = topic[len(prefix) :].partition("/")
        kind = _KINDS.get(rest)
        if not sep or kind is None or not DEVICE_ID_RE.match(device_id):
            return None
        return device_id, kind


_KINDS: dict[str, DeviceTopic] = {kind.value: kind for kind in DeviceTopic}
