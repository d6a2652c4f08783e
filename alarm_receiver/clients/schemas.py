"""The client register's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Text100 = Annotated[str, StringConstraints(max_length=100)]
Text200 = Annotated[str, StringConstraints(max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=4000)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=32, pattern=r"^\+?[0-9 ()-]{3,32}$")]
DeviceKind = Literal["device", "camera", "lock"]


class ContactIn(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    relation: Annotated[str, StringConstraints(max_length=64)] | None = None
    phone: Phone
    has_key: bool = False
    call_at_night: bool = True


class ContactOut(ContactIn):
    model_config = ConfigDict(from_attributes=True)

    phone: str  # as stored


class ClientIn(BaseModel):
    """A whole record, as a case officer writes it (PUT replaces it, call list included)."""

    ref: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    street: Text200 = ""
    postcode: Annotated[str, StringConstraints(max_length=16)] = ""
    town: Text100 = ""
    floor: Annotated[str, StringConstraints(max_length=32)] | None = None
    entrance: Text100 | None = None
    door_code: Text100 | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    language: Annotated[str, StringConstraints(max_length=32)] | None = None
    hard_of_hearing: bool = False
    speech_impaired: bool = False
    interpreter: bool = False
    practical_notes: LongText | None = None
    health_notes: LongText | None = None
    care_unit: Text100 | None = None
    area: Annotated[str, StringConstraints(max_length=64)] | None = None
    key_safe_location: Text200 | None = None
    key_safe_code: Annotated[str, StringConstraints(max_length=64)] | None = None
    key_number: Annotated[str, StringConstraints(max_length=32)] | None = None
    contacts: Annotated[list[ContactIn], Field(max_length=20)] = []


class DeviceLinkIn(BaseModel):
    device_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    kind: DeviceKind = "device"


class DeviceLinkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    kind: str
    linked_at: datetime
    unlinked_at: datetime | None


class LockStateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    state: str
    door: str | None
    battery_pct: int | None
    updated_at: datetime


class ClientView(BaseModel):
    """A record as the reader's role may see it (access.py): fields the role may not see are absent, not null."""

    id: int
    ref: str
    name: str | None = None
    street: str | None = None
    postcode: str | None = None
    town: str | None = None
    floor: str | None = None
    entrance: str | None = None
    door_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    language: str | None = None
    hard_of_hearing: bool | None = None
    speech_impaired: bool | None = None
    interpreter: bool | None = None
    practical_notes: str | None = None
    health_notes: str | None = None
    care_unit: str | None = None
    area: str | None = None
    key_safe_location: str | None = None
    key_safe_code: str | None = None
    key_number: str | None = None
    has_key_safe: bool | None = None
    contacts: list[ContactOut] | None = None
    devices: list[DeviceLinkOut] | None = None
    locks: list[LockStateOut] | None = None


class ProtectedView(BaseModel):
    """The need-to-know fields, fetched apart and logged (access.py)."""

    client_id: int
    alarm_id: int | None
    health_notes: str | None
    door_code: str | None
    key_safe_code: str | None


class ClientSummary(BaseModel):
    id: int
    ref: str
    name: str | None
    address: str
    area: str | None
    devices: list[str]


class LogEntryOut(BaseModel):
    """One supervision-log entry of the client's extract (loggkontroll)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    client_ref: str | None
    subject: str | None
    details: dict[str, object]
