"""Request and response models of the receiver's HTTP API."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Note = Annotated[str, StringConstraints(max_length=2000)]


class IntakeAlarm(BaseModel):
    kind: Literal["alarm"]
    device_id: Key
    alarm_id: Key
    type: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    priority: Annotated[int, Field(ge=0, le=9)]
    device_ts: datetime
    stored_at: datetime
    is_test: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class IntakeCancel(BaseModel):
    kind: Literal["cancel"]
    device_id: Key
    alarm_id: Key
    cancelled_at: datetime


class IntakeResolve(BaseModel):
    """The gateway closes an alarm it raised itself (device back online, check-in done)."""

    kind: Literal["resolve"]
    device_id: Key
    alarm_id: Key
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    actor: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "gateway"
    resolved_at: datetime
    # The outcome as a code with parameters for the console (outcome stays the English); optional for older
    # gateways.
    code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    params: dict[str, Any] | None = None


IntakeItem = Annotated[IntakeAlarm | IntakeCancel | IntakeResolve, Field(discriminator="kind")]


class IntakeRequest(BaseModel):
    items: Annotated[list[IntakeItem], Field(max_length=5000)]


class IntakeResult(BaseModel):
    device_id: str
    alarm_id: str
    result: Literal["created", "duplicate", "cancelled", "unknown", "not_cancellable", "resolved", "not_open"]


class IntakeResponse(BaseModel):
    results: list[IntakeResult]


class AlarmEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    note: str | None
    code: str | None = None
    params: dict[str, Any] | None = None


class AlarmOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    alarm_id: str
    type: str
    priority: int
    state: str
    escalation_level: int
    is_test: bool
    device_ts: datetime
    stored_at: datetime
    received_at: datetime
    updated_at: datetime
    assigned_to: str | None
    outcome: str | None
    outcome_code: str | None = None
    outcome_params: dict[str, Any] | None = None
    details: dict[str, Any]


class AlarmDetailOut(AlarmOut):
    events: list[AlarmEventOut]


class NoteIn(BaseModel):
    note: Note | None = None


class AssignIn(NoteIn):
    patrol: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ResolveIn(NoteIn):
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class RequiredNoteIn(BaseModel):
    note: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class LoginIn(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    role: str
    username: str


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    username: str
    role: str
    display_name: str | None
