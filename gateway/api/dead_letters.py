"""Dead letters for technicians (and operators, read only): what the gateway could not handle, newest first.

A payload may hold personal text, so every read is logged in the supervision log (``dead_letters.read``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gateway import dead_letters
from gateway.api.deps import ApiUser, SessionDep, require_roles
from gateway.dead_letters import DeadLetterOut
from trygg import audit
from trygg.errors import responses

Reader = Annotated[ApiUser, Depends(require_roles("technician", "operator"))]

router = APIRouter(prefix="/dead-letters", tags=["dead letters"], responses=responses(401, 403, 422, 503))


@router.get("", response_model=list[DeadLetterOut])
async def list_dead_letters(
    user: Reader,
    session: SessionDep,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[DeadLetterOut]:
    rows = [dead_letters.out(row) for row in await dead_letters.newest(session, limit, device_id)]
    await audit.append(
        session,
        actor=user.username,
        action="dead_letters.read",
        subject=f"device-{device_id}" if device_id else "dead-letters",
        details={"role": user.role, "count": len(rows), "device_id": device_id},
    )
    await session.commit()
    return rows
