"""Request and response models of the receiver's HTTP API.

The intake models (what the gateway sends) are the wire contract both services import: ``wire/intake.py``.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from wire.intake import IntakeAlarm as IntakeAlarm
from wire.intake import IntakeCancel as IntakeCancel
from wire.intake import IntakeItem as IntakeItem
from wire.intake import IntakeRequest as IntakeRequest
from wire.intake import IntakeResolve as IntakeResolve
from wire.intake import IntakeResponse as IntakeResponse
from wire.intake import IntakeResult as IntakeResult

Note = Annotated[str, StringConstraints(max_length=2000)]


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
    # The person behind it (client register): name and short address for the queue; the record itself is
    # GET /api/v1/clients/{client_id} under the need-to-know rules.
    client_id: int | None = None
    client_name: str | None = None
    client_address: str | None = None
    routing_missing: bool = False
    # alarms of the same type from the device while this one was open, collapsed into it (issue 8): how many, and
    # when the latest was stored at the gateway
    repeats: int = 0
    last_repeat_at: datetime | None = None


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
