"""Gateway <-> receiver for voice calls (docs/voice.md).

- ``POST {receiver}/api/v1/voice/rights`` with the *operator's own* bearer token: may this person talk with the
  unit of this alarm now? The receiver decides (it owns the queue and who handles what) and answers
  :class:`VoiceRight`, or refuses with a coded 403/404 that it logs in its supervision log. The gateway asks on
  every answer and callback and caches nothing, as it does for tokens.
- ``POST {receiver}/api/v1/voice/events`` with the gateway's intake token: a call rang, was answered, ended or
  failed (:class:`CallEvent`). The receiver writes it into the alarm's history (a code with parameters) and
  pushes it to the live feed, so the console rings.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

RIGHTS_PATH = "/api/v1/voice/rights"
EVENTS_PATH = "/api/v1/voice/events"

CallEventKind = Literal["ringing", "answered", "ended", "failed"]


class VoiceRightRequest(BaseModel):
    device_id: Key  # the alarm's device (a pendant, or the unit itself)
    alarm_id: Key
    purpose: Literal["answer", "callback"]


class VoiceRight(BaseModel):
    username: str
    role: str
    alarm_pk: int
    state: str


class CallEvent(BaseModel):
    device_id: Key
    alarm_id: Key
    call_id: Key
    unit_id: Key
    event: CallEventKind
    actor: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    callback: bool = False
    # answered: who; ended: who, reason, duration_s; failed: reason (a code the console translates)
    reason: Annotated[str, StringConstraints(max_length=64)] | None = None
    duration_s: Annotated[float, Field(ge=0)] | None = None
