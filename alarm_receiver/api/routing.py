"""Routing routes: patrol areas, the shift roster (patrols sign on and off themselves), and the patrols proposed
for an alarm. Logic lives in ``alarm_receiver.clients.routing``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from alarm_receiver import auth, queue
from alarm_receiver.api.deps import CurrentUser, Operator, QueueReader, SessionDep, require_roles
from alarm_receiver.clients import routing
from alarm_receiver.models import User
from trygg.errors import responses
from trygg.http import DbId

router = APIRouter(tags=["routing"], responses=responses(401, 403, 404, 422))

AreaCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Patrol = Annotated[User, Depends(require_roles(auth.Role.PATROL))]
Manager = Annotated[User, Depends(require_roles(auth.Role.CASE_OFFICER))]


class AreaOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str


class AreaIn(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class AreasIn(BaseModel):
    areas: Annotated[list[AreaCode], Field(max_length=50)]


class SignOffIn(BaseModel):
    areas: Annotated[list[AreaCode], Field(max_length=50)] | None = None  # none: every area


class ShiftOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    username: str
    area: str


class ProposalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    username: str
    display_name: str | None
    areas: list[str]
    on_shift_here: bool
    load: int


@router.get("/areas", response_model=list[AreaOut])
async def areas(session: SessionDep, user: CurrentUser) -> list[AreaOut]:
    return [AreaOut.model_validate(a) for a in await routing.list_areas(session)]


@router.put("/areas/{code}", response_model=AreaOut)
async def put_area(code: AreaCode, body: AreaIn, session: SessionDep, user: Manager) -> AreaOut:
    area = await routing.put_area(session, code, body.name)
    await session.commit()
    return AreaOut.model_validate(area)


@router.get("/roster", response_model=list[ShiftOut])
async def roster(session: SessionDep, user: QueueReader) -> list[ShiftOut]:
    """Who is signed on for which area now (a patrol sees its own)."""
    mine = user.username if user.role == "patrol" else None
    return [ShiftOut.model_validate(s) for s in await routing.open_shifts(session, mine)]


@router.post("/roster/sign-on", response_model=list[ShiftOut])
async def sign_on(body: AreasIn, session: SessionDep, user: Patrol) -> list[ShiftOut]:
    shifts = await routing.sign_on(session, user.username, body.areas)
    await session.commit()
    return [ShiftOut.model_validate(s) for s in shifts]


@router.post("/roster/sign-off", response_model=list[ShiftOut])
async def sign_off(body: SignOffIn, session: SessionDep, user: Patrol) -> list[ShiftOut]:
    shifts = await routing.sign_off(session, user.username, body.areas)
    await session.commit()
    return [ShiftOut.model_validate(s) for s in shifts]


@router.get("/alarms/{alarm_pk}/proposals", response_model=list[ProposalOut])
async def proposals(alarm_pk: DbId, session: SessionDep, user: Operator) -> list[ProposalOut]:
    """The assign dialog's list: patrols on shift for the client's area first, with their open alarms."""
    alarm = await queue.get_alarm(session, alarm_pk)
    return [ProposalOut.model_validate(p) for p in await routing.proposals(session, alarm)]
