"""A client's history in one timeline: their alarms and tasks (check-in calls, patrol visits), every step of each
(notes, assignments, on site, unlocks and door events, outcomes), newest first. Check-ins themselves are the
gateway's: the console adds them from ``/gw/api/v1/checkins?client_ref=``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.models import AlarmEvent, QueueAlarm


@dataclass(frozen=True, slots=True)
class TimelineItem:
    at: datetime
    alarm_id: int
    alarm_type: str
    action: str
    actor: str
    code: str | None
    params: dict[str, Any]


async def timeline(session: AsyncSession, client_id: int, limit: int = 200) -> list[TimelineItem]:
    rows = await session.execute(
        select(AlarmEvent, QueueAlarm.type)
        .join(QueueAlarm, QueueAlarm.id == AlarmEvent.alarm_pk)
        .where(QueueAlarm.client_id == client_id)
        .order_by(AlarmEvent.at.desc(), AlarmEvent.id.desc())
        .limit(limit)
    )
    return [
        TimelineItem(
            at=e.at,
            alarm_id=e.alarm_pk,
            alarm_type=alarm_type,
            action=e.action,
            actor=e.actor,
            code=e.code,
            params=dict(e.params or {}),
        )
        for e, alarm_type in rows
    ]
