"""Gateway -> receiver intake: ``POST {receiver}/api/v1/intake`` with a batch of outbox items.

The gateway builds these models from its outbox (``gateway/forwarder.py``), the receiver validates the same
models (``alarm_receiver/api/intake.py``). Idempotent on ``(device_id, alarm_id)``: a batch sent twice changes
nothing. The receiver answers 200 only after its commit, with one :class:`IntakeResult` per item, in order.

``details`` is what the operator sees beside the alarm: the contract's optional fields (``text``,
``battery_pct``, ``location``), what the gateway itself adds (``client_ref`` from its registry, the details of an
alarm it raised) and ``device_extra``: whatever else the device sent, carried as opaque data that neither service
interprets. ``is_test`` is the gateway's own decision (its installation-test window), never the device's.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

INTAKE_PATH = "/api/v1/intake"

Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class IntakeAlarm(BaseModel):
    kind: Literal["alarm"] = "alarm"
    device_id: Key
    alarm_id: Key
    type: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    priority: Annotated[int, Field(ge=0, le=9)]
    device_ts: datetime
    stored_at: datetime
    is_test: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


class IntakeCancel(BaseModel):
    kind: Literal["cancel"] = "cancel"
    device_id: Key
    alarm_id: Key
    cancelled_at: datetime


class IntakeResolve(BaseModel):
    """The gateway closes an alarm it raised itself (device back online, check-in done)."""

    kind: Literal["resolve"] = "resolve"
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
