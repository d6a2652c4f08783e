"""What the durable path answers and keeps: the outcome of an intake item, a message as it came, a dead letter.

Plain data shared by the port (``gateway/port.py``), the intake writer (``gateway/intake.py``) and the dead-letter
store (``gateway/dead_letters.py``), so that none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from trygg.db import utcnow


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"
    CANCEL_DUPLICATE = "cancel_duplicate"
    UNKNOWN_DEVICE = "unknown_device"
    RETIRED_DEVICE = "retired_device"
    UNKNOWN_ALARM = "unknown_alarm"
    ALARM_ID_REUSED = "alarm_id_reused"
    RESOLVED = "resolved"
    RESOLVE_DUPLICATE = "resolve_duplicate"
    UNSTORABLE = "unstorable"  # the store refused the item on its content; kept as a dead letter
    DEAD_LETTERED = "dead_lettered"  # a dead letter was stored


@dataclass(frozen=True, slots=True)
class Received:
    """A message as it came: where from (an MQTT topic, or another protocol's address) and its bytes."""

    source: str
    payload: bytes
    protocol: str = "mqtt"  # how it came (mqtt, scaip, dc09): filed with the alarm, shown in its details


@dataclass(frozen=True, slots=True)
class Letter:
    """A message that could not be handled, kept in the bounded dead-letter table for a technician."""

    received: Received
    code: str  # a rejection code (invalid, too_deep, ...) or the failure (handler_error, unstorable, bad_topic)
    error: str  # the reason, or the exception's type and where it was raised: never the exception's own text
    device_id: str | None = None
    kind: str | None = None
    received_at: datetime = field(default_factory=utcnow)
