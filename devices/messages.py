"""Typed payload models of contract version 1 (JSON over MQTT)."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from devices.types import AlarmType

MAX_PAYLOAD_BYTES = 8 * 1024
CONTRACT_VERSION = 1

AlarmId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise ValueError("timestamp must carry a UTC offset (RFC 3339)")
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00: before year 1 in UTC
        raise ValueError("timestamp is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Payload(BaseModel):
    # Unknown fields are allowed (forward compatibility) but known fields are strictly typed: payloads are
    # validated from JSON text in strict mode (no "9" for 9, no numbers for timestamps).
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class Location(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    code: Annotated[str, StringConstraints(max_length=64)] | None = None
    text: Annotated[str, StringConstraints(max_length=256)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class AlarmMessage(_Payload):
    """``{root}/devices/{id}/alarm``, device -> gateway, QoS 1."""

    alarm_id: AlarmId
    type: AlarmType
    ts: UtcDatetime
    priority: Annotated[int, Field(ge=0, le=9, strict=True)] | None = None
    device_id: DeviceId | None = None
    battery_pct: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None
    location: Location | None = None
    text: Annotated[str, StringConstraints(max_length=1024)] | None = None

    def contract_fields(self) -> dict[str, object]:
        """The fields this contract version defines, as JSON values (unset ones left out)."""
        return self.model_dump(mode="json", exclude_none=True, exclude=set(self.model_extra or ()))

    def device_extra(self) -> dict[str, object]:
        """Whatever else the device sent: carried as opaque data, never interpreted (docs/contract.md)."""
        return dict(self.model_extra or {})


class AlarmCancel(_Payload):
    """``{root}/devices/{id}/alarm/cancel``: the device cancels a false press (same alarm_id)."""

    alarm_id: AlarmId
    ts: UtcDatetime
    device_id: DeviceId | None = None


class AckStatus(StrEnum):
    STORED = "stored"  # durably stored: stop resending
    REJECTED = "rejected"  # will never be accepted: do not resend
    CANCELLED = "cancelled"  # the cancel request is durably stored
    ACKNOWLEDGED = "acknowledged"  # an operator took it: help is coming


class AckSubject(StrEnum):
    ALARM = "alarm"
    CANCEL = "cancel"


class AlarmAck(BaseModel):
    """``{root}/devices/{id}/alarm/ack``, gateway/receiver -> device, QoS 1.

    ``subject`` says whether it answers the alarm or a cancel of it; ``code`` is the machine-readable
    rejection code (see docs/contract.md), ``reason`` the human text.
    """

    model_config = ConfigDict(frozen=True)

    alarm_id: str
    status: AckStatus
    subject: AckSubject = AckSubject.ALARM
    code: str | None = None
    reason: str | None = None
    ts: datetime = Field(default_factory=utcnow)


class Heartbeat(_Payload):
    """``{root}/devices/{id}/heartbeat``: supervision signal (issue "device fleet" builds on it).

    ``has_mains: false`` says the device has no mains connection at all (a battery-only pendant): it can never
    lose mains, and ``mains`` is then left out. ``mains: false`` from a device with mains means mains is lost.
    """

    ts: UtcDatetime
    battery_pct: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None
    has_mains: bool | None = None
    mains: bool | None = None
    signal_dbm: Annotated[int, Field(ge=-150, le=0, strict=True)] | None = None
    network: Annotated[str, StringConstraints(max_length=16)] | None = None
    firmware: Annotated[str, StringConstraints(max_length=64)] | None = None
    config_version: Annotated[int, Field(ge=0, strict=True)] | None = None

    @model_validator(mode="after")
    def _mains_needs_mains(self) -> Self:
        if self.has_mains is False and self.mains is True:
            raise ValueError("mains cannot be true on a device without mains (has_mains false)")
        return self


class DeviceConfig(_Payload):
    """``{root}/devices/{id}/config``, gateway -> device, QoS 1, retained: settings the device must apply.

    ``version`` grows with every change; the device reports the version it applied in its heartbeats
    (``config_version``). Unknown keys are for newer firmware: ignore what you do not know.
    """

    version: Annotated[int, Field(ge=1, strict=True)]
    heartbeat_interval_s: Annotated[int, Field(ge=60, le=86400, strict=True)]
