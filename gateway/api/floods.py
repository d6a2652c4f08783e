"""Devices flagged for flooding alarms (gateway/floods.py), for technicians and operators: which, since when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from gateway.api.deps import ApiUser, require_roles
from trygg.errors import responses

Reader = Annotated[ApiUser, Depends(require_roles("technician", "operator"))]

router = APIRouter(prefix="/floods", tags=["devices"], responses=responses(401, 403, 503))


class FloodOut(BaseModel):
    device_id: str
    since: datetime
    alarms: int  # alarms counted in the window the device was last over the limit
    window_s: float
    limit: int


@router.get("", response_model=list[FloodOut])
async def list_floods(user: Reader, request: Request) -> list[FloodOut]:
    """Devices now sending more than ``device_alarm_rate_limit`` alarms per ``device_alarm_rate_window_s``. Their
    alarms are all stored and forwarded; a repeat is collapsed into its open queue item at the receiver."""
    floods = request.app.state.gateway.core.floods.current()
    return [
        FloodOut(device_id=f.device_id, since=f.since, alarms=f.alarms, window_s=f.window_s, limit=f.limit)
        for f in floods
    ]
