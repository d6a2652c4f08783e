"""Request and response models of the check-in API (``gateway/checkin/routes.py``); consents' own models are in
``gateway/checkin/consent.py``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints


class OfferIn(BaseModel):
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    type: Literal["offer"]
    # The same operator's own live look through this camera (a reloaded page) ends and this one takes over.
    take_over: bool = False


class EndLookIn(BaseModel):
    """Why the operator's page ends a look: the operator's button, or the page being left (reload, close)."""

    reason: Literal["operator", "page_left"] = "operator"


class AlarmLookIn(OfferIn):
    """A look on an alarm: which alarm (from one of the client's devices), and the operator's offer."""

    device_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    alarm_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["seen_ok", "not_seen", "needs_help"]
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class SkipIn(BaseModel):
    night: date
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class WithdrawIn(BaseModel):
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class CheckinOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    consent_id: int
    client_ref: str
    camera_id: str
    kind: str
    night: date
    due_at: datetime
    step: int
    parent_id: int | None
    state: str
    raised_at: datetime | None
    started_at: datetime | None
    started_by: str | None
    look_id: str | None
    outcome: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    note: str | None


class LogEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    action: str
    client_ref: str | None
    subject: str | None
    details: dict[str, Any]
    hash: str
