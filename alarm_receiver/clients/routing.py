"""Routing an alarm to the patrol that can help: patrol areas, the shift roster (a patrol signs on for areas and
off again), and the patrols proposed for an alarm: on shift for the client's area first, with how many open
alarms each already holds. The roster serves routing only: nothing here times or ranks a person's work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.clients.models import Client, PatrolArea, PatrolShift
from alarm_receiver.models import QueueAlarm, User
from alarm_receiver.queue import OPEN_STATES
from trygg.db import utcnow
from trygg.errors import CodedError


class RoutingError(CodedError):
    status = 422


@dataclass(frozen=True, slots=True)
class Proposal:
    username: str
    display_name: str | None
    areas: list[str]  # the areas the patrol is signed on for now
    on_shift_here: bool  # signed on for the client's area
    load: int  # open alarms assigned to it


async def list_areas(session: AsyncSession) -> Sequence[PatrolArea]:
    return (await session.scalars(select(PatrolArea).order_by(PatrolArea.code))).all()


async def put_area(session: AsyncSession, code: str, name: str) -> PatrolArea:
    area = await session.get(PatrolArea, code)
    if area is None:
        area = PatrolArea(code=code, name=name)
        session.add(area)
    else:
        area.name = name
    await session.flush()
    return area


async def open_shifts(session: AsyncSession, username: str | None = None) -> Sequence[PatrolShift]:
    stmt = select(PatrolShift).where(PatrolShift.ended_at.is_(None))
    if username is not None:
        stmt = stmt.where(PatrolShift.username == username)
    return (await session.scalars(stmt.order_by(PatrolShift.username, PatrolShift.area))).all()


async def sign_on(session: AsyncSession, username: str, areas: Sequence[str]) -> Sequence[PatrolShift]:
    """Sign on for these areas (those already signed on for stay as they are)."""
    known = {a.code for a in await list_areas(session)}
    unknown = sorted(set(areas) - known)
    if unknown:
        raise RoutingError("routing.unknown_area", f"no patrol area {unknown[0]}", area=unknown[0])
    current = {s.area for s in await open_shifts(session, username)}
    for area in dict.fromkeys(areas):
        if area not in current:
            session.add(PatrolShift(username=username, area=area, started_at=utcnow()))
    await session.flush()
    return await open_shifts(session, username)


async def sign_off(session: AsyncSession, username: str, areas: Sequence[str] | None = None) -> Sequence[PatrolShift]:
    """Sign off from these areas, or from all of them; returns what is left."""
    now = utcnow()
    for shift in await open_shifts(session, username):
        if areas is None or shift.area in areas:
            shift.ended_at = now
    await session.flush()
    return await open_shifts(session, username)


async def proposals(session: AsyncSession, alarm: QueueAlarm) -> list[Proposal]:
    """Every active patrol: those on shift for the client's area first, then those on shift elsewhere, then the
    rest; inside each, the fewest open alarms first."""
    area = await session.scalar(select(Client.area).where(Client.id == alarm.client_id)) if alarm.client_id else None
    patrols = (
        await session.scalars(
            select(User).where(User.role == "patrol", User.disabled.is_(False)).order_by(User.username)
        )
    ).all()
    shifts: dict[str, list[str]] = {}
    for shift in await open_shifts(session):
        shifts.setdefault(shift.username, []).append(shift.area)
    loads = dict(
        (
            await session.execute(
                select(QueueAlarm.assigned_to, func.count())
                .where(QueueAlarm.state.in_([s.value for s in OPEN_STATES]), QueueAlarm.assigned_to.is_not(None))
                .group_by(QueueAlarm.assigned_to)
            )
        ).all()
    )
    out = [
        Proposal(
            username=p.username,
            display_name=p.display_name,
            areas=shifts.get(p.username, []),
            on_shift_here=area is not None and area in shifts.get(p.username, []),
            load=int(loads.get(p.username, 0)),
        )
        for p in patrols
    ]
    out.sort(key=lambda p: (not p.on_shift_here, not p.areas, p.load, p.username))
    return out
