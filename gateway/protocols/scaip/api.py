"""Technicians' SCAIP unit API under ``/api/v1/scaip/units``: list, map an identity to a device, remove a mapping.
Thin routes over ``registry.py``; refusals are domain errors (codes ``scaip.*``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StringConstraints

from gateway.api.deps import ApiUser, SessionDep, feature, require_roles
from gateway.errors import Conflict, Invalid, NotFound
from gateway.protocols.scaip.feature import ScaipFeature
from gateway.protocols.scaip.registry import UnitError, add_unit, list_units, remove_unit
from trygg.errors import responses

Technician = Annotated[ApiUser, Depends(require_roles("technician"))]
Scaip = Annotated[ScaipFeature, Depends(feature(ScaipFeature))]


class UnitIn(BaseModel):
    cid: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,16}$")]
    device_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    did: Annotated[str, StringConstraints(min_length=1, max_length=8, pattern=r"^[^\x00-\x1f]+$")] | None = None
    crd: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f]+$")] | None = None
    mre: Annotated[int, Field(ge=0, le=3)] = 0
    hbi: Annotated[int, Field(ge=0, le=4)] | None = None
    mrs_in_200: bool = False


class UnitOut(BaseModel):
    id: int
    cid: str
    did: str | None
    crd: str | None
    device_id: str
    mre: int
    hbi: int | None
    mrs_in_200: bool
    created_at: datetime


# 503: the receiver, which checks every token, cannot be reached (auth.check_unavailable)
router = APIRouter(prefix="/scaip/units", tags=["scaip"], responses=responses(401, 403, 404, 409, 422, 503))


@router.get("", response_model=list[UnitOut])
async def units(session: SessionDep, user: Technician) -> list[UnitOut]:
    return [UnitOut.model_validate(u, from_attributes=True) for u in await list_units(session)]


@router.post("", response_model=UnitOut, status_code=201, responses=responses(400))
async def add(body: UnitIn, session: SessionDep, user: Technician, scaip: Scaip) -> UnitOut:
    try:
        unit = await add_unit(session, **body.model_dump())
    except UnitError as exc:
        if exc.code == "scaip.unit_exists":
            raise Conflict(exc.code, str(exc), cid=body.cid) from None
        if exc.code == "scaip.unknown_device":
            raise NotFound(exc.code, str(exc), device_id=body.device_id) from None
        raise Invalid(exc.code, str(exc)) from None
    await session.commit()
    scaip.handler.forget(body.cid)  # the receiver reads this controller's entries again
    await session.refresh(unit)
    return UnitOut.model_validate(unit, from_attributes=True)


@router.delete("/{unit_id}", status_code=204)
async def remove(unit_id: int, session: SessionDep, user: Technician, scaip: Scaip) -> None:
    try:
        cid = (await remove_unit(session, unit_id)).cid
    except UnitError as exc:
        raise NotFound(exc.code, str(exc), unit_id=unit_id) from None
    await session.commit()
    scaip.handler.forget(cid)
