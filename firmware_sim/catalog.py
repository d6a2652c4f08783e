"""What a simulated device model is: its firmware string, the alarm its button raises, its power source; the ids
of its alarms and when an unconfirmed one is sent again."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from devices import AlarmType, DeviceType

FIRMWARE = "trygg-sim/0.1"

DEFAULT_ALARM_TYPE: dict[DeviceType, AlarmType] = {
    DeviceType.PENDANT: AlarmType.ASSISTANCE,
    DeviceType.FALL_SENSOR: AlarmType.FALL,
    DeviceType.SMOKE: AlarmType.SMOKE,
    DeviceType.DOOR: AlarmType.DOOR,
    DeviceType.BED: AlarmType.BED_EXIT,
    DeviceType.CAMERA: AlarmType.ASSISTANCE,
    DeviceType.BASE_UNIT: AlarmType.ASSISTANCE,
}

# Battery-only devices; the others run on mains with a backup battery.
BATTERY_ONLY = frozenset({DeviceType.PENDANT, DeviceType.FALL_SENSOR, DeviceType.SMOKE})


def new_alarm_id() -> str:
    """Unique per device: milliseconds since the epoch plus 32 random bits (``[A-Za-z0-9_-]{1,64}``)."""
    return f"{int(time.time() * 1000)}-{secrets.token_hex(4)}"


@dataclass(slots=True)
class Resend:
    """When an outbox entry is sent again: ``next_at`` (loop time), then after ``delay`` (doubling, 5-20 s)."""

    next_at: float  # loop time of the next (re)send
    delay: float  # the next base delay
