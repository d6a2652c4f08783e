"""Voice calls, the receiver's part: who may talk with a client's unit, and the calls in each alarm's history.

The receiver owns the queue, so it decides (the gateway asks on every answer and callback, wire/voice.py):

- an operator (or admin) may talk on an *open* alarm;
- a patrol only on an open alarm assigned to it;
- everyone else, and every closed (resolved, cancelled) alarm, is refused with a code, logged in the
  supervision log (``voice.refused``) and counted by the refusal handler.

The gateway reports each call's ringing, answer, end and failure; each becomes a history line (code ``call.*``
with parameters, translated by the console) and goes to the supervision log. No HTTP here.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.models import QueueAlarm, User
from alarm_receiver.queue import (
    OPEN_STATES,
    Action,
    State,
    _event,
    _log,
    find_alarm,
    get_alarm,
    tell_help_coming,
    transition,
)
from trygg import audit
from trygg.db import utcnow
from trygg.errors import CodedError
from wire.voice import CallEvent, VoiceRight, VoiceRightRequest


class VoiceRefused(CodedError):
    status = 403


class VoiceNotFound(CodedError):
    status = 404


def _client(alarm: QueueAlarm) -> str | None:
    ref = alarm.details.get("client_ref") if alarm.details else None
    return str(ref) if ref is not None else None


def _refusal(user: User, alarm: QueueAlarm | None, request: VoiceRightRequest) -> CodedError | None:
    if user.role not in ("operator", "patrol", "admin"):
        return VoiceRefused("voice.role_refused", f"role {user.role!r} may not talk with a client", role=user.role)
    if alarm is None:
        return VoiceNotFound("voice.alarm_not_found", "no such alarm in the queue")
    if State(alarm.state) not in OPEN_STATES:
        return VoiceRefused("voice.alarm_closed", f"the alarm is {alarm.state}: no call", state=alarm.state)
    if user.role == "patrol" and alarm.assigned_to != user.username:
        return VoiceRefused("voice.not_assigned", "a patrol may call only for an alarm assigned to it")
    if user.role == "patrol" and request.purpose != "callback":
        return VoiceRefused("voice.patrol_callback_only", "a patrol calls the unit from the patrol view")
    return None


async def decide_right(session: AsyncSession, user: User, request: VoiceRightRequest) -> VoiceRight:
    """The right to talk with the unit of this alarm now, or a coded refusal (logged; the caller commits)."""
    alarm, _ = await find_alarm(session, request.device_id, request.alarm_id)  # also an alarm collapsed into one
    refusal = _refusal(user, alarm, request)
    subject = f"alarm:{request.device_id}/{request.alarm_id}"
    if refusal is not None:
        await audit.append(
            session,
            actor=user.username,
            action="voice.refused",
            client_ref=_client(alarm) if alarm is not None else None,
            subject=subject,
            details={"code": refusal.code, "role": user.role, "purpose": request.purpose},
        )
        await session.commit()
        raise refusal
    assert alarm is not None
    await audit.append(
        session,
        actor=user.username,
        action="voice.right_issued",
        client_ref=_client(alarm),
        subject=subject,
        details={"role": user.role, "purpose": request.purpose},
    )
    return VoiceRight(username=user.username, role=user.role, alarm_pk=alarm.id, state=alarm.state)


_NOTES = {
    "ringing": "the unit calls",
    "answered": "call answered by {actor}",
    "ended": "call ended ({reason}) after {duration_s} s",
    "failed": "call failed: {reason}",
}


async def record_call_event(session: AsyncSession, event: CallEvent) -> QueueAlarm:
    """The call's step in the alarm's history and the supervision log (flushed; the caller commits)."""
    alarm, _ = await find_alarm(session, event.device_id, event.alarm_id)
    if alarm is None:
        raise VoiceNotFound("voice.alarm_not_found", "no such alarm in the queue (yet)")
    params: dict[str, object] = {"call_id": event.call_id, "unit_id": event.unit_id, "by": event.actor}
    if event.reason is not None:
        params["reason"] = event.reason
    if event.duration_s is not None:
        params["duration_s"] = round(event.duration_s)
    if event.callback:
        params["callback"] = True
    note = _NOTES[event.event].format(actor=event.actor, reason=event.reason, duration_s=params.get("duration_s"))
    _event(alarm, event.actor, "call", None, None, note, f"call.{event.event}", params)
    await _log(session, alarm.device_id, alarm.alarm_id, alarm.details, event.actor, f"call_{event.event}", **params)
    alarm.updated_at = utcnow()
    await session.flush()
    return alarm


async def help_coming(session: AsyncSession, alarm_pk: int, user: User) -> QueueAlarm:
    """The in-call button: tell the client's device "help is coming". A new alarm is acknowledged by it (which
    tells the device); an alarm already in hand gets the notice again, and a history line."""
    alarm = await get_alarm(session, alarm_pk, for_update=True)
    if user.role == "patrol" and alarm.assigned_to != user.username:
        raise VoiceRefused("voice.not_assigned", "a patrol may act only on an alarm assigned to it")
    if State(alarm.state) not in OPEN_STATES:
        raise VoiceRefused("voice.alarm_closed", f"the alarm is {alarm.state}: no call", state=alarm.state)
    if alarm.state == State.NEW.value:
        return await transition(session, alarm_pk, Action.ACKNOWLEDGE, user.username)
    await tell_help_coming(session, alarm)
    _event(alarm, user.username, "call", None, None, "told the client: help is coming", "call.help_coming", {})
    await _log(session, alarm.device_id, alarm.alarm_id, alarm.details, user.username, "help_coming")
    alarm.updated_at = utcnow()
    await session.flush()
    return alarm
