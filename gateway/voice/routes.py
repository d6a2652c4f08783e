"""The voice API: calls ringing or live, answer, call back, hang up. Thin: the rules are in
``gateway/voice/feature.py``; refusals are the domain errors the app's one handler answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, StringConstraints

from gateway.api.deps import CurrentUser, feature
from gateway.errors import Unauthorized
from gateway.voice.feature import VoiceFeature
from trygg.errors import responses

Voice = Annotated[VoiceFeature, Depends(feature(VoiceFeature))]
_bearer = HTTPBearer(auto_error=False)
Key = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=20_000)]


def _token(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("auth.not_logged_in", "not logged in")
    return creds.credentials


Token = Annotated[str, Depends(_token)]

# 502: the call could not be put through (the unit is offline, did not answer, ICE failed): said plainly
router = APIRouter(prefix="/voice", tags=["voice"], responses=responses(400, 401, 403, 404, 409, 422, 502, 503))


class CallOut(BaseModel):
    call_id: str
    unit_id: str
    alarm_device_id: str
    alarm_id: str
    phase: str
    callback: bool
    operator: str | None
    rang_at: datetime
    answered_at: datetime | None


class OfferIn(BaseModel):
    sdp: Sdp
    type: Literal["offer"]


class CallbackIn(OfferIn):
    device_id: Key
    alarm_id: Key
    unit_id: Key | None = None


@router.get("/calls", response_model=list[CallOut])
async def calls(user: CurrentUser, voice: Voice) -> list[Any]:
    return voice.calls(user)


@router.post("/calls/{call_id}/answer")
async def answer(call_id: Key, body: OfferIn, user: CurrentUser, token: Token, voice: Voice) -> dict[str, Any]:
    return await voice.answer(call_id, token, user, body.sdp, body.type)


@router.post("/callback")
async def callback(body: CallbackIn, user: CurrentUser, token: Token, voice: Voice) -> dict[str, Any]:
    return await voice.callback(token, user, body.device_id, body.alarm_id, body.unit_id, body.sdp, body.type)


@router.post("/calls/{call_id}/end", status_code=204)
async def hang_up(call_id: Key, user: CurrentUser, voice: Voice) -> None:
    await voice.hang_up(call_id, user)
