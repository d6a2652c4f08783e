"""Gateway -> receiver: what digital locks did (``POST {receiver}/api/v1/intake/locks``, the intake token).

``state``: a lock's state as it reported it (``lock``: locked | unlocked | jammed | offline, ``door``: open | closed);
``unlock_sent``: the gateway checked a grant and published the unlock; ``unlock_refused``: it refused one, with the
refusal's ``code``. The receiver writes them into the alarm's history and its supervision log; a door opening after
an unlock marks the alarm on site.
"""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

LOCK_EVENTS_PATH = "/api/v1/intake/locks"

Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class LockEvent(BaseModel):
    device_id: Key
    kind: Literal["state", "unlock_sent", "unlock_refused"]
    at: datetime
    lock: Literal["locked", "unlocked", "jammed", "offline"] | None = None
    door: Literal["open", "closed"] | None = None
    battery_pct: Annotated[int, Field(ge=0, le=100)] | None = None
    alarm: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None  # the receiver's alarm id the grant named
    patrol: Annotated[str, StringConstraints(max_length=64)] | None = None
    code: Annotated[str, StringConstraints(max_length=64)] | None = None  # the refusal's code
    grant_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class LockEvents(BaseModel):
    events: Annotated[list[LockEvent], Field(max_length=1000)]
