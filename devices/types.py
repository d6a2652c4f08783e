"""Device types, alarm types and their default priorities (0-9, 9 highest)."""

from enum import StrEnum


class DeviceType(StrEnum):
    PENDANT = "pendant"
    FALL_SENSOR = "fall_sensor"
    SMOKE = "smoke"
    DOOR = "door"
    BED = "bed"
    CAMERA = "camera"
    BASE_UNIT = "base_unit"
    LOCK = "lock"  # a digital door lock (issue 10; docs/contract.md, "Digital locks")


class AlarmType(StrEnum):
    ASSISTANCE = "assistance"
    FALL = "fall"
    SMOKE = "smoke"
    DOOR = "door"
    BED_EXIT = "bed_exit"
    INACTIVITY = "inactivity"
    TAMPER = "tamper"
    LOW_BATTERY = "low_battery"
    MAINS_LOST = "mains_lost"
    MAINS_RESTORED = "mains_restored"
    # Technical alarms raised by the gateway itself (supervision), carried by the same path.
    DEVICE_OFFLINE = "device_offline"
    DEVICE_ONLINE = "device_online"
    AREA_OUTAGE = "area_outage"
    # Tasks the gateway puts in the operators' queue on the same path (camera check-ins, patrol visits).
    CHECKIN_DUE = "checkin_due"
    PATROL_VISIT = "patrol_visit"
    # Alarm units speaking SCAIP (gateway/protocols/scaip/, docs/protocols-scaip.md): what the MQTT contract had
    # no type for. An alarm whose code Trygg does not map is a generic_alarm carrying its raw code.
    GENERIC_ALARM = "generic_alarm"
    BATTERY_FAILURE = "battery_failure"
    BATTERY_OK = "battery_ok"
    LINK_LOST = "link_lost"
    LINK_RESTORED = "link_restored"
    TEST_TRANSMISSION = "test_transmission"


# Priority first (fire and falls above a call for assistance, above technical), then age.
DEFAULT_PRIORITY: dict[AlarmType, int] = {
    AlarmType.SMOKE: 9,
    AlarmType.FALL: 8,
    AlarmType.ASSISTANCE: 7,
    AlarmType.INACTIVITY: 6,
    AlarmType.BED_EXIT: 5,
    AlarmType.DOOR: 5,
    AlarmType.AREA_OUTAGE: 5,
    AlarmType.PATROL_VISIT: 7,
    AlarmType.CHECKIN_DUE: 5,
    AlarmType.TAMPER: 4,
    AlarmType.DEVICE_OFFLINE: 4,
    AlarmType.MAINS_LOST: 3,
    AlarmType.LOW_BATTERY: 3,
    AlarmType.DEVICE_ONLINE: 1,
    AlarmType.MAINS_RESTORED: 1,
    # SCAIP units (docs/protocols-scaip.md): an unmapped alarm is taken as seriously as a call for assistance.
    AlarmType.GENERIC_ALARM: 7,
    AlarmType.BATTERY_FAILURE: 4,
    AlarmType.LINK_LOST: 4,
    AlarmType.BATTERY_OK: 1,
    AlarmType.LINK_RESTORED: 1,
    AlarmType.TEST_TRANSMISSION: 0,
}

# Alarm types a device may send on its own alarm topic (the gateway raises the rest).
GATEWAY_ALARM_TYPES: frozenset[AlarmType] = frozenset(
    {
        AlarmType.DEVICE_OFFLINE,
        AlarmType.DEVICE_ONLINE,
        AlarmType.AREA_OUTAGE,
        AlarmType.CHECKIN_DUE,
        AlarmType.PATROL_VISIT,
    }
)
DEVICE_ALARM_TYPES: frozenset[AlarmType] = frozenset(DEFAULT_PRIORITY) - GATEWAY_ALARM_TYPES

# Technical alarms: about the equipment, not the person (the technicians' open alarms of a device; the console
# shows them apart). Tasks: work the gateway puts in the operators' queue, not alarms. The console gets both lists
# from the receiver (/console/config.json), never a copy of its own.
TECHNICAL_ALARM_TYPES: frozenset[AlarmType] = frozenset(
    {
        AlarmType.DEVICE_OFFLINE,
        AlarmType.AREA_OUTAGE,
        AlarmType.LOW_BATTERY,
        AlarmType.MAINS_LOST,
        AlarmType.TAMPER,
        AlarmType.BATTERY_FAILURE,
        AlarmType.LINK_LOST,
    }
)
TASK_TYPES: frozenset[AlarmType] = frozenset({AlarmType.CHECKIN_DUE, AlarmType.PATROL_VISIT})

# Alarms about a person's safety: a device may raise their priority but never lower it below the default (a
# misconfigured or tampered device must not push a fall behind a low battery). Technical and informational types
# (tamper, low_battery, mains_lost, mains_restored) take the device's priority as it is. docs/contract.md, section 4.
LIFE_SAFETY_TYPES: frozenset[AlarmType] = frozenset(
    {
        AlarmType.SMOKE,
        AlarmType.FALL,
        AlarmType.ASSISTANCE,
        AlarmType.INACTIVITY,
        AlarmType.BED_EXIT,
        AlarmType.DOOR,
        AlarmType.GENERIC_ALARM,
    }
)


def effective_priority(alarm_type: AlarmType, requested: int | None) -> int:
    """The priority an alarm from a device is filed with: its type's default when it asks for none, what it
    asks for otherwise, but never below the default for a life-safety type."""
    default = DEFAULT_PRIORITY[alarm_type]
    if requested is None:
        return default
    return max(requested, default) if alarm_type in LIFE_SAFETY_TYPES else requested


class DeviceStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
