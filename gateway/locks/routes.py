"""The gateway's lock route: ``POST /api/v1/locks/{device_id}/unlock`` with a grant (patrols only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, StringConstraints

from gateway.api.deps import ApiUser, feature, require_roles
from gateway.locks.feature import LockFeature
from trygg.errors import responses

router = APIRouter(tags=["locks"], responses=responses(401, 403, 404, 409, 422, 503))

Patrol = Annotated[ApiUser, Depends(require_roles("patrol"))]
Locks = Annotated[LockFeature, Depends(feature(LockFeature))]
DeviceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class UnlockIn(BaseModel):
    grant: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class UnlockOut(BaseModel):
    command_id: str


@router.post("/locks/{device_id}/unlock", response_model=UnlockOut, status_code=status.HTTP_202_ACCEPTED)
async def unlock(device_id: DeviceId, body: UnlockIn, request: Request, user: Patrol, locks: Locks) -> UnlockOut:
    """Refused with a code when the grant is missing, invalid, expired (``lock.grant_expired``), another patrol's
    (``lock.grant_other_patrol``) or for another lock, or when the receiver says the alarm is no longer open and
    theirs (``lock.alarm_not_open``)."""
    token = request.headers.get("authorization", "").partition(" ")[2]
    return UnlockOut(command_id=await locks.unlock(user, token, device_id, body.grant))
