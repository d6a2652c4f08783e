"""The console's night overview and the patrol list for assigning (operators and admins).

``GET /api/v1/overview/night?hours=12``: every alarm and task stored in the period with its history, grouped
per client for a timeline, and the shift's figures: alarms by type, time to acknowledge and to on site
(p50/p90, seconds from stored), camera check-ins done/missed/open. ``GET /api/v1/console/patrols``: who can
be assigned.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from alarm_receiver.api.deps import Operator, SessionDep
from alarm_receiver.models import QueueAlarm, User
from trygg.db import utcnow

router = APIRouter(tags=["console"])

_CHECKIN_DONE = ("seen_ok", "not_seen", "needs_help")


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def _first(alarm: QueueAlarm, action: str) -> datetime | None:
    return next((e.at for e in alarm.events if e.action == action), None)


def _checkin_result(alarm: QueueAlarm) -> str:
    outcome = alarm.outcome or ""
    if alarm.state not in ("resolved", "cancelled"):
        return "open"
    if outcome.startswith(_CHECKIN_DONE):
        return "done"
    if outcome.startswith("missed"):
        return "missed"
    return "cancelled"


def night_overview(alarms: list[QueueAlarm], since: datetime, until: datetime) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    ack_s: list[float] = []
    on_site_s: list[float] = []
    checkins: Counter[str] = Counter({"done": 0, "missed": 0, "open": 0, "cancelled": 0})
    clients: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alarms:
        by_type[a.type] += 1
        acked = _first(a, "acknowledge")
        on_site = _first(a, "on_site")
        closed = _first(a, "resolve") or _first(a, "cancel")
        if acked is not None:
            ack_s.append((acked - a.stored_at).total_seconds())
        if on_site is not None:
            on_site_s.append((on_site - a.stored_at).total_seconds())
        result = None
        if a.type == "checkin_due":
            result = _checkin_result(a)
            checkins[result] += 1
        client = str(a.details.get("client_ref") or a.device_id)
        clients[client].append(
            {
                "id": a.id,
                "type": a.type,
                "priority": a.priority,
                "state": a.state,
                "outcome": a.outcome,
                "checkin": result,
                "at": a.stored_at,
                "acknowledged_at": acked,
                "on_site_at": on_site,
                "closed_at": closed,
                "assigned_to": a.assigned_to,
            }
        )
    return {
        "since": since,
        "until": until,
        "total": len(alarms),
        "by_type": dict(by_type.most_common()),
        "ack_s": {"n": len(ack_s), "p50": percentile(ack_s, 50), "p90": percentile(ack_s, 90)},
        "on_site_s": {"n": len(on_site_s), "p50": percentile(on_site_s, 50), "p90": percentile(on_site_s, 90)},
        "checkins": dict(checkins),
        "clients": [{"client": k, "items": v} for k, v in sorted(clients.items())],
    }


@router.get("/overview/night")
async def overview(
    session: SessionDep, user: Operator, hours: Annotated[float, Query(gt=0, le=48)] = 12
) -> dict[str, Any]:
    until = utcnow()
    since = until - timedelta(hours=hours)
    rows = await session.scalars(
        select(QueueAlarm)
        .where(QueueAlarm.stored_at >= since)
        .options(selectinload(QueueAlarm.events))
        .order_by(QueueAlarm.stored_at, QueueAlarm.id)
        .limit(20000)
    )
    return night_overview(list(rows.all()), since, until)


@router.get("/console/patrols")
async def patrols(session: SessionDep, user: Operator) -> list[dict[str, str | None]]:
    rows = await session.scalars(
        select(User).where(User.role == "patrol", User.disabled.is_(False)).order_by(User.username)
    )
    return [{"username": u.username, "display_name": u.display_name} for u in rows.all()]
