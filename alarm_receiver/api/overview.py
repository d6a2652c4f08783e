"""The console's night overview and the patrol list for assigning (operators and admins).

``GET /api/v1/overview/night?hours=12``: the last ``hours``; ``?night=2026-03-28``: the night that began that
evening (local time). Both return what ``alarm_receiver.overview`` computes. ``GET /api/v1/console/patrols``: who
can be assigned.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from alarm_receiver.api.deps import Operator, ReceiverDep, SessionDep
from alarm_receiver.models import User
from alarm_receiver.overview import load_overview, night_period
from trygg.db import utcnow
from trygg.errors import responses

router = APIRouter(responses=responses(401, 403, 422), tags=["console"])


@router.get("/overview/night")
async def overview(
    session: SessionDep,
    receiver: ReceiverDep,
    user: Operator,
    hours: Annotated[float, Query(gt=0, le=48)] = 12,
    night: Annotated[date | None, Query(description="local date on which the night began")] = None,
) -> dict[str, Any]:
    if night is None:
        until = utcnow()
        since = until - timedelta(hours=hours)
    else:
        s = receiver.settings
        since, until = night_period(night, s.timezone, s.night_start, s.night_end)
    return await load_overview(session, since, until)


@router.get("/console/patrols")
async def patrols(session: SessionDep, user: Operator) -> list[dict[str, str | None]]:
    rows = await session.scalars(
        select(User).where(User.role == "patrol", User.disabled.is_(False)).order_by(User.username)
    )
    return [{"username": u.username, "display_name": u.display_name} for u in rows.all()]
