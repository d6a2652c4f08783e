"""Digital locks (contract v1, docs/contract.md, "Digital locks"): the lock's state and the unlock command.

- ``{root}/devices/{id}/lock/state``, lock -> gateway, QoS 1, retained: :class:`LockState`, sent at start, on every
  change (locked/unlocked/jammed, door open/closed) and with the battery level.
- ``{root}/devices/{id}/lock/command``, gateway -> lock, QoS 1: :class:`LockCommand`; the gateway publishes an
  unlock only after it has verified the grant (the receiver's signed permission for one patrol, one alarm, one
  lock, for a short time). The grant travels with the command so that a lock able to verify it can do so too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from devices.messages import UtcDatetime, _Payload


class LockPosition(StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    JAMMED = "jammed"


class DoorPosition(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class LockState(_Payload):
    """``lock/state``: where the bolt is, whether the door is open, the battery."""

    ts: UtcDatetime
    lock: LockPosition
    door: DoorPosition | None = None
    battery_pct: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None
    # the unlock command this state answers, when it does
    command_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None


class LockCommand(_Payload):
    """``lock/command``: unlock now, and relock after ``relock_after_s`` once the door is closed again."""

    command: Literal["unlock"]
    command_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    ts: UtcDatetime
    grant: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    relock_after_s: Annotated[float, Field(gt=0, le=600)] = 30.0
