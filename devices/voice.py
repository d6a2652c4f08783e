"""Signalling payloads of a voice call between a base unit and an operator, contract version 1.

All under ``{root}/devices/{unit_id}/voice/...``, JSON, QoS 1 (docs/contract.md, section 10, has the prose):

- ``voice/state`` unit -> everyone, retained: :class:`VoiceState` (what it can do: ``speaker``, ``microphone``;
  ``idle`` / ``ringing`` / ``in_call``);
- ``voice/call`` unit -> gateway: :class:`VoiceCall` (the unit calls, for its alarm: it rings at the console);
- ``voice/request`` gateway -> unit: :class:`VoiceRequest` (the gateway's WebRTC offer, when an operator answered
  the unit's call or calls the unit back; the unit answers);
- ``voice/answer`` unit -> gateway: :class:`VoiceAnswer` (the SDP answer, or ``error`` when it will not);
- ``voice/end`` either way: :class:`VoiceEnd` (``by`` says who sent it, so each side skips its own echo).

Media: one two-way audio m-line (Opus) between the unit and the gateway; the gateway relays it to the operator's
browser on a second peer connection, so a unit never reaches a browser. Pure data; no I/O. As in
devices/messages.py: unknown fields allowed, known fields strictly typed.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from devices.messages import AlarmId, DeviceId, UtcDatetime

# One audio m-line with host candidates fits well inside the 8 KiB every payload must stay under.
MAX_SDP_CHARS = 7000

CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Capability(StrEnum):
    SPEAKER = "speaker"
    MICROPHONE = "microphone"


# A unit can hold a call only with both.
VOICE_CAPABILITIES: frozenset[Capability] = frozenset({Capability.SPEAKER, Capability.MICROPHONE})


class _Signal(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class VoiceLineState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"  # it has called and waits for an operator
    IN_CALL = "in_call"


class VoiceState(_Signal):
    """``voice/state``, retained: what the unit can do and is doing. ``call_id`` is set unless ``idle``."""

    capabilities: Annotated[list[Capability], Field(max_length=8)]
    state: VoiceLineState
    call_id: CallId | None = None
    ts: UtcDatetime

    def can_talk(self) -> bool:
        return VOICE_CAPABILITIES <= set(self.capabilities)


class VoiceCall(_Signal):
    """``voice/call``: the unit calls for an alarm (its own, or a paired pendant's: ``alarm_device_id``). Sent once
    the alarm is ``stored``; the call rings at the console until an operator answers or ``max_ring_s`` passes."""

    call_id: CallId
    alarm_id: AlarmId
    alarm_device_id: DeviceId | None = None  # None: the unit's own alarm
    ts: UtcDatetime
    max_ring_s: Annotated[float, Field(gt=0, le=600)] = 120


class VoiceRequest(_Signal):
    """``voice/request``: the gateway connects an operator (answering ``call_id``, or a callback with a new id)."""

    call_id: CallId
    sdp: Sdp
    type: Literal["offer"] = "offer"
    callback: bool = False
    alarm_id: AlarmId | None = None
    max_s: Annotated[float, Field(gt=0, le=7200)] = 1800


class VoiceAnswer(_Signal):
    """``voice/answer``: the unit's SDP answer, or ``error`` (busy, no speaker, ...) and no SDP."""

    call_id: CallId
    sdp: Sdp | None = None
    type: Literal["answer"] | None = None
    error: Reason | None = None

    @model_validator(mode="after")
    def _answer_or_error(self) -> "VoiceAnswer":
        if (self.error is None) == (self.sdp is None):
            raise ValueError("a voice answer carries either sdp (with type 'answer') or error")
        if self.sdp is not None and self.type != "answer":
            raise ValueError("an SDP answer needs type 'answer'")
        return self


class EndedBy(StrEnum):
    GATEWAY = "gateway"
    UNIT = "unit"


class VoiceEnd(_Signal):
    """``voice/end``: the sender hung up, gave up ringing, or refuses; the receiver closes the call too."""

    call_id: CallId
    reason: Reason
    by: EndedBy
