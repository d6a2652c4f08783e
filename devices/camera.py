"""Signaling payloads of a camera check-in ("look"), contract version 1.

All under ``{root}/devices/{camera_id}/camera/...``, JSON, QoS 1 (docs/camera.md has the prose):

- ``camera/request`` gateway -> camera: :class:`CameraRequest` (the gateway's WebRTC offer; the camera answers);
- ``camera/answer`` camera -> gateway: :class:`CameraAnswer` (the SDP answer, or ``error`` when it will not);
- ``camera/end`` either way: :class:`CameraEnd` (``by`` says who sent it, so each side skips its own echo);
- ``camera/state`` camera -> everyone, retained: :class:`CameraState` (``idle`` or ``live``).

Pure data and validation; no I/O. Like devices/messages.py: unknown fields allowed, known fields strictly typed.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from devices.messages import UtcDatetime

# An SDP of one video (and optionally one audio) m-line with host candidates fits well inside the 8 KiB every
# payload must stay under; a bigger one is refused rather than truncated.
MAX_SDP_CHARS = 7000

LookId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Signal(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class CameraRequest(_Signal):
    """``camera/request``: the gateway asks the camera for a look and offers WebRTC (the camera only sends)."""

    look_id: LookId
    sdp: Sdp
    type: Literal["offer"] = "offer"
    # The longest the camera may stream for this look; the camera also applies its own, lower cap if it has one.
    max_s: Annotated[float, Field(gt=0, le=600)]
    audio: bool = False


class CameraAnswer(_Signal):
    """``camera/answer``: the camera's SDP answer, or ``error`` (busy, no camera, covered, ...) and no SDP."""

    look_id: LookId
    sdp: Sdp | None = None
    type: Literal["answer"] | None = None
    error: Reason | None = None

    @model_validator(mode="after")
    def _answer_or_error(self) -> "CameraAnswer":
        if (self.error is None) == (self.sdp is None):
            raise ValueError("a camera answer carries either sdp (with type 'answer') or error")
        if self.sdp is not None and self.type != "answer":
            raise ValueError("an SDP answer needs type 'answer'")
        return self


class EndedBy(StrEnum):
    GATEWAY = "gateway"
    CAMERA = "camera"


class CameraEnd(_Signal):
    """``camera/end``: the sender has ended (or refuses to continue) the look; the receiver closes it too."""

    look_id: LookId
    reason: Reason
    by: EndedBy


class CameraLiveState(StrEnum):
    IDLE = "idle"
    LIVE = "live"


class CameraState(_Signal):
    """``camera/state``, retained: what the camera is doing now. ``look_id`` is set while ``live``."""

    state: CameraLiveState
    look_id: LookId | None = None
    ts: UtcDatetime
