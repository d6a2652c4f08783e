"""The check-in API: consents (case officers), check-ins and looks (operators), a client's log (case officers).

Thin routes: the rules are in ``consent.py``, ``looks.py`` and ``outcomes.py``, which raise domain errors that
the one handler of ``trygg/errors.py`` (installed by ``gateway/app.py``) answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from gateway.api.deps import ApiUser, CurrentUser, SessionDep, feature, require_roles
from gateway.checkin import consent as consents
from gateway.checkin.consent import ConsentChange, ConsentIn, ConsentOut
from gateway.checkin.feature import CheckinFeature
from gateway.checkin.models import Checkin
from gateway.checkin.schemas import (
    AlarmLookIn,
    CheckinOut,
    EndLookIn,
    LogEntryOut,
    OfferIn,
    OutcomeIn,
    SkipIn,
    WithdrawIn,
)
from gateway.errors import NotFound
from trygg import audit
from trygg.errors import responses
from trygg.http import DbId

Reader = Annotated[ApiUser, Depends(require_roles("operator", "case_officer"))]
CaseOfficer = Annotated[ApiUser, Depends(require_roles("case_officer"))]
ClientRequest = Annotated[ApiUser, Depends(require_roles("case_officer", "operator"))]
LogReader = Annotated[ApiUser, Depends(require_roles("case_officer"))]
Checkins = Annotated[CheckinFeature, Depends(feature(CheckinFeature))]

# 502: a camera's look failed; 503: the receiver, which checks every token, cannot be reached
router = APIRouter(tags=["camera check-ins"], responses=responses(400, 401, 403, 404, 409, 422, 502, 503))


@router.get("/consents", response_model=list[ConsentOut])
async def list_consents(
    user: Reader, session: SessionDep, client_ref: str | None = None, include_withdrawn: bool = False
) -> list[ConsentOut]:
    rows = await consents.list_consents(session, client_ref=client_ref, include_withdrawn=include_withdrawn)
    return [await consents.describe(session, c) for c in rows]


@router.get("/consents/{consent_id}", response_model=ConsentOut)
async def get_consent(consent_id: DbId, user: Reader, session: SessionDep) -> ConsentOut:
    return await consents.describe(session, await consents.get_consent(session, consent_id))


@router.post("/consents", response_model=ConsentOut, status_code=201)
async def create_consent(body: ConsentIn, user: CaseOfficer, session: SessionDep, checkins: Checkins) -> ConsentOut:
    tz = checkins.settings.timezone
    c = await consents.create_consent(session, body, actor=user.username, default_tz=tz, now=checkins.now())
    out = await consents.describe(session, c)
    await session.commit()
    return out


@router.patch("/consents/{consent_id}", response_model=ConsentOut)
async def change_consent(
    consent_id: DbId, body: ConsentChange, user: CaseOfficer, session: SessionDep, checkins: Checkins
) -> ConsentOut:
    c = await consents.change_consent(session, consent_id, body, actor=user.username, now=checkins.now())
    out = await consents.describe(session, c)
    await session.commit()
    return out


@router.post("/consents/{consent_id}/skip", status_code=204)
async def skip_night(consent_id: DbId, body: SkipIn, user: ClientRequest, checkins: Checkins) -> None:
    await checkins.skip(consent_id, body, user)


@router.post("/consents/{consent_id}/withdraw", response_model=ConsentOut)
async def withdraw(
    consent_id: DbId, body: WithdrawIn, user: ClientRequest, session: SessionDep, checkins: Checkins
) -> ConsentOut:
    c = await checkins.withdraw(consent_id, user, body.reason)
    return await consents.describe(session, c)


@router.get("/checkins", response_model=list[CheckinOut])
async def list_checkins(
    user: Reader,
    session: SessionDep,
    client_ref: str | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Checkin]:
    query = select(Checkin).order_by(Checkin.due_at.desc(), Checkin.id.desc()).limit(limit)
    if client_ref is not None:
        query = query.where(Checkin.client_ref == client_ref)
    if state is not None:
        query = query.where(Checkin.state == state)
    return list((await session.scalars(query)).all())


@router.get("/checkins/{checkin_id}", response_model=CheckinOut)
async def get_checkin(checkin_id: DbId, user: Reader, session: SessionDep) -> Checkin:
    ck = await session.get(Checkin, checkin_id)
    if ck is None:
        raise NotFound("checkin.not_found", f"no check-in {checkin_id}", checkin_id=checkin_id)
    return ck


@router.post("/checkins/{checkin_id}/look")
async def look(checkin_id: DbId, body: OfferIn, user: CurrentUser, checkins: Checkins) -> dict[str, Any]:
    return await checkins.start_look(checkin_id, body, user)


@router.post("/consents/{consent_id}/alarm-look")
async def alarm_look(consent_id: DbId, body: AlarmLookIn, user: CurrentUser, checkins: Checkins) -> dict[str, Any]:
    return await checkins.start_alarm_look(consent_id, body, user)


@router.post("/looks/{look_id}/end", status_code=204)
async def end_look(look_id: str, user: CurrentUser, checkins: Checkins, body: EndLookIn | None = None) -> None:
    await checkins.end_look(look_id, user, body.reason if body is not None else "operator")


@router.post("/checkins/{checkin_id}/outcome", response_model=CheckinOut)
async def outcome(checkin_id: DbId, body: OutcomeIn, user: CurrentUser, checkins: Checkins) -> Checkin:
    return await checkins.record_outcome(checkin_id, body, user)


@router.get("/clients/{client_ref}/log", response_model=list[LogEntryOut])
async def client_log(
    client_ref: str, user: LogReader, session: SessionDep, since: Annotated[datetime | None, Query()] = None
) -> list[audit.Entry]:
    entries = await audit.read_client_log(
        session, client_ref, actor=user.username, since=since, extra={"role": user.role}
    )
    await session.commit()
    return entries
