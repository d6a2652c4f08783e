"""Digital-lock routes (docs/clients.md, "Digital locks"): a patrol's unlock (the receiver signs a grant, the
gateway checks it and publishes), the grant alone for API users, and the gateway's reports of lock states and
unlock outcomes. Logic lives in ``alarm_receiver.clients.locks``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import httpx
import structlog
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from alarm_receiver import auth
from alarm_receiver.api.deps import BearerToken, GatewayAuth, ReceiverDep, SessionDep, require_roles
from alarm_receiver.clients import locks
from alarm_receiver.models import User
from alarm_receiver.service import Receiver
from trygg.errors import ApiError, responses
from trygg.http import DbId
from wire.locks import LockEvents

log = structlog.get_logger(__name__)
router = APIRouter(tags=["locks"], responses=responses(401, 403, 404, 409, 422, 503))

Patrol = Annotated[User, Depends(require_roles(auth.Role.PATROL))]


class GrantOut(BaseModel):
    grant: str
    lock: str
    alarm: int
    expires_at: datetime


class UnlockOut(BaseModel):
    status: str
    lock: str
    command_id: str
    expires_at: datetime


async def _grant(receiver: Receiver, session: SessionDep, user: User, alarm_pk: int) -> GrantOut:
    try:
        grant, text = await locks.issue_grant(
            session, user, alarm_pk, receiver.grant_key, receiver.settings.lock_grant_ttl_s
        )
    except locks.LockRefused:
        await session.commit()  # the refusal is in the alarm's history and the log
        await receiver.publish_alarms([alarm_pk])
        raise
    await session.commit()
    return GrantOut(grant=text, lock=grant.lock, alarm=grant.alarm, expires_at=locks.expires_at(grant))


@router.post("/alarms/{alarm_pk}/lock-grant", response_model=GrantOut)
async def lock_grant(alarm_pk: DbId, receiver: ReceiverDep, session: SessionDep, user: Patrol) -> GrantOut:
    """A grant for the assigned patrol to present to the gateway (``POST {gateway}/api/v1/locks/{lock}/unlock``)."""
    return await _grant(receiver, session, user, alarm_pk)


@router.post("/alarms/{alarm_pk}/unlock", response_model=UnlockOut)
async def unlock(
    alarm_pk: DbId, receiver: ReceiverDep, session: SessionDep, user: Patrol, token: BearerToken
) -> UnlockOut:
    """The patrol view's button: a grant, handed to the gateway with the patrol's own token; the gateway's refusal
    (expired, another patrol's, the alarm no longer open) comes back as it is."""
    g = await _grant(receiver, session, user, alarm_pk)
    url = f"{receiver.settings.gateway_url.rstrip('/')}/api/v1/locks/{g.lock}/unlock"
    try:
        resp = await receiver.gateway_http.post(
            url, json={"grant": g.grant}, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as exc:
        log.error("gateway unreachable for an unlock", alarm=alarm_pk, error=str(exc) or type(exc).__name__)
        raise ApiError(503, "gateway.unreachable", "the gateway cannot be reached right now") from exc
    body: dict[str, Any] = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code != 202:
        code = body.get("code")
        params = body.get("params")
        raise ApiError(
            resp.status_code,
            code if isinstance(code, str) else "http.unavailable",
            str(body.get("detail") or "the gateway refused the unlock"),
            **(params if isinstance(params, dict) else {}),
        )
    return UnlockOut(status="sent", lock=g.lock, command_id=str(body["command_id"]), expires_at=g.expires_at)


@router.post("/intake/locks", dependencies=[GatewayAuth], status_code=204)
async def lock_events(body: LockEvents, receiver: ReceiverDep, session: SessionDep) -> None:
    """The gateway's reports: lock states, unlocks sent, unlocks refused (wire/locks.py)."""
    changed: list[int] = []
    for ev in body.events:
        changed.extend(await locks.apply_event(session, ev))
    await session.commit()
    await receiver.publish_alarms(dict.fromkeys(changed))
