"""Alarm routes: list, detail, and the lifecycle actions. Logic lives in alarm_receiver.queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alarm_receiver import metrics, queue
from alarm_receiver.api.deps import Operator, QueueReader, ReceiverDep, SessionDep
from alarm_receiver.models import QueueAlarm, User
from alarm_receiver.queue import Action, State
from alarm_receiver.schemas import AlarmDetailOut, AlarmOut, AssignIn, NoteIn, RequiredNoteIn, ResolveIn
from trygg.errors import ApiError, responses
from trygg.http import DbId

router = APIRouter(prefix="/alarms", tags=["alarms"], responses=responses(401, 403, 404, 409, 422))


def _is_patrol(user: User) -> bool:
    return user.role == "patrol"


async def _check_patrol_owns(session: SessionDep, user: User, alarm_pk: int) -> None:
    """A patrol acts only on alarms assigned to it; others' alarms do not exist for it (404)."""
    if _is_patrol(user):
        current = await queue.get_alarm(session, alarm_pk)
        if current.assigned_to != user.username:
            raise ApiError(404, "alarm.not_assigned", f"no alarm {alarm_pk} assigned to you", id=alarm_pk)


@router.get("", response_model=list[AlarmOut])
async def list_alarms(
    session: SessionDep,
    user: QueueReader,
    state: Annotated[list[State] | None, Query(description="repeat for several; default: open states")] = None,
    min_priority: Annotated[int | None, Query(ge=0, le=9)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    all_states: bool = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[QueueAlarm]:
    states = [s.value for s in state] if state else (None if all_states else [s.value for s in queue.OPEN_STATES])
    rows = await queue.list_alarms(
        session,
        states=states,
        min_priority=min_priority,
        device_id=device_id,
        assigned_to=user.username if _is_patrol(user) else None,
        limit=limit,
    )
    return list(rows)


@router.get("/{alarm_pk}", response_model=AlarmDetailOut)
async def get_alarm(alarm_pk: DbId, session: SessionDep, user: QueueReader) -> QueueAlarm:
    alarm = await queue.get_alarm(session, alarm_pk)
    if _is_patrol(user) and alarm.assigned_to != user.username:
        raise ApiError(404, "alarm.not_assigned", f"no alarm {alarm_pk} assigned to you", id=alarm_pk)
    return alarm


async def _act(
    receiver: ReceiverDep,
    session: SessionDep,
    user: User,
    alarm_pk: int,
    action: Action,
    *,
    note: str | None = None,
    patrol: str | None = None,
    outcome: str | None = None,
) -> QueueAlarm:
    await _check_patrol_owns(session, user, alarm_pk)
    alarm = await queue.transition(session, alarm_pk, action, user.username, note=note, patrol=patrol, outcome=outcome)
    await session.commit()
    metrics.TRANSITIONS.labels(action.value).inc()
    if action is Action.ACKNOWLEDGE:
        receiver.notice_wake.set()
    receiver.publish_alarm(alarm)
    return alarm


@router.post("/{alarm_pk}/acknowledge", response_model=AlarmDetailOut)
async def acknowledge(
    alarm_pk: DbId, body: NoteIn, receiver: ReceiverDep, session: SessionDep, user: Operator
) -> QueueAlarm:
    return await _act(receiver, session, user, alarm_pk, Action.ACKNOWLEDGE, note=body.note)


@router.post("/{alarm_pk}/assign", response_model=AlarmDetailOut)
async def assign(
    alarm_pk: DbId, body: AssignIn, receiver: ReceiverDep, session: SessionDep, user: Operator
) -> QueueAlarm:
    return await _act(receiver, session, user, alarm_pk, Action.ASSIGN, note=body.note, patrol=body.patrol)


@router.post("/{alarm_pk}/on-site", response_model=AlarmDetailOut)
async def on_site(
    alarm_pk: DbId, body: NoteIn, receiver: ReceiverDep, session: SessionDep, user: QueueReader
) -> QueueAlarm:
    return await _act(receiver, session, user, alarm_pk, Action.ON_SITE, note=body.note)


@router.post("/{alarm_pk}/resolve", response_model=AlarmDetailOut)
async def resolve(
    alarm_pk: DbId, body: ResolveIn, receiver: ReceiverDep, session: SessionDep, user: QueueReader
) -> QueueAlarm:
    return await _act(receiver, session, user, alarm_pk, Action.RESOLVE, note=body.note, outcome=body.outcome)


@router.post("/{alarm_pk}/cancel", response_model=AlarmDetailOut)
async def cancel(
    alarm_pk: DbId, body: NoteIn, receiver: ReceiverDep, session: SessionDep, user: Operator
) -> QueueAlarm:
    return await _act(receiver, session, user, alarm_pk, Action.CANCEL, note=body.note)


@router.post("/{alarm_pk}/notes", response_model=AlarmDetailOut)
async def add_note(
    alarm_pk: DbId, body: RequiredNoteIn, receiver: ReceiverDep, session: SessionDep, user: QueueReader
) -> QueueAlarm:
    await _check_patrol_owns(session, user, alarm_pk)
    alarm = await queue.add_note(session, alarm_pk, user.username, body.note)
    await session.commit()
    receiver.publish_alarm(alarm)
    return alarm
