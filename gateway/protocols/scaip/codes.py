"""SCAIP status codes (``stc``) and device types (``dty``) to Trygg's alarm types (docs/protocols-scaip.md).

An automatic alarm (0009, or an alarm without a status code) is typed by the device that raised it: a fall
detector's is a ``fall``, a smoke detector's ``smoke``. A manual alarm (0010) and a call for assistance (0110) are
a person pressing a button, whatever the device. A code in no table is still an alarm: ``generic_alarm`` with the
raw code kept beside it, never dropped. Priorities are the alarm type's defaults (``devices.DEFAULT_PRIORITY``);
the unit's own ``pri`` is kept as sent but not used (its scale is not in public sources).
"""

from __future__ import annotations

from devices import AlarmType

AUTOMATIC_ALARM = 9
MANUAL_ALARM = 10
ASSISTANCE = 110

# status code -> alarm type, whatever the device
BY_STATUS: dict[int, AlarmType] = {
    MANUAL_ALARM: AlarmType.ASSISTANCE,
    ASSISTANCE: AlarmType.ASSISTANCE,
    14: AlarmType.BATTERY_FAILURE,
    15: AlarmType.BATTERY_OK,
    16: AlarmType.LOW_BATTERY,
    # link failures: IP, mobile network, landline, primary link, redundant link; radio test missing; offline
    23: AlarmType.LINK_LOST,
    24: AlarmType.LINK_LOST,
    25: AlarmType.LINK_LOST,
    26: AlarmType.LINK_LOST,
    27: AlarmType.LINK_LOST,
    123: AlarmType.LINK_LOST,
    73: AlarmType.LINK_LOST,
    # ... and re-established
    112: AlarmType.LINK_RESTORED,
    113: AlarmType.LINK_RESTORED,
    114: AlarmType.LINK_RESTORED,
    115: AlarmType.LINK_RESTORED,
    116: AlarmType.LINK_RESTORED,
    124: AlarmType.LINK_RESTORED,
    75: AlarmType.LINK_RESTORED,
    76: AlarmType.DOOR,  # open
    77: AlarmType.DOOR,  # open too long
    85: AlarmType.MAINS_LOST,  # power failure
    86: AlarmType.MAINS_RESTORED,
    102: AlarmType.TEST_TRANSMISSION,  # over the primary channel
    103: AlarmType.TEST_TRANSMISSION,  # over the redundant channel
    125: AlarmType.TAMPER,
}

# device type -> the alarm type of its automatic alarm
BY_DEVICE: dict[int, AlarmType] = {
    3: AlarmType.ASSISTANCE,  # personal trigger
    4: AlarmType.ASSISTANCE,  # fixed trigger
    5: AlarmType.FALL,  # fall detector
    7: AlarmType.ASSISTANCE,  # panic button
    10: AlarmType.INACTIVITY,  # activity detector
    12: AlarmType.BED_EXIT,  # bed monitor
    13: AlarmType.BED_EXIT,  # mat sensor
    14: AlarmType.DOOR,  # door sensor
    15: AlarmType.DOOR,  # wandering sensor
    23: AlarmType.SMOKE,  # smoke detector
    25: AlarmType.SMOKE,  # heat detector
    30: AlarmType.FALL,  # automatic man-down detector
}


def alarm_type(stc: int | None, dty: int) -> tuple[AlarmType, bool]:
    """The alarm type of a status code from a device type, and whether the code was mapped."""
    if stc is None or stc == AUTOMATIC_ALARM:
        mapped = BY_DEVICE.get(dty)
        return (mapped, True) if mapped is not None else (AlarmType.GENERIC_ALARM, False)
    mapped = BY_STATUS.get(stc)
    return (mapped, True) if mapped is not None else (AlarmType.GENERIC_ALARM, False)
