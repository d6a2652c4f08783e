"""Voice routes: the gateway asks for a person's right to talk (with that person's token) and reports calls
(with its intake token); the console's "help is coming" button. Logic in alarm_receiver/voice.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from alarm_receiver import voice
from alarm_receiver.api.deps import CurrentUser, GatewayAuth, QueueReader, ReceiverDep, SessionDep
from alarm_receiver.models import QueueAlarm
from alarm_receiver.schemas import AlarmDetailOut
from trygg.errors import responses
from trygg.http import DbId
from wire.voice import CallEvent, VoiceRight, VoiceRightRequest

router = APIRouter(tags=["voice"], responses=responses(401, 403, 404, 409, 422))


@router.post("/voice/rights", response_model=VoiceRight)
async def right(body: VoiceRightRequest, user: CurrentUser, session: SessionDep) -> VoiceRight:
    granted = await voice.decide_right(session, user, body)
    await session.commit()
    return granted


@router.post("/voice/events", status_code=204, dependencies=[GatewayAuth])
async def call_event(body: CallEvent, receiver: ReceiverDep, session: SessionDep) -> None:
    alarm = await voice.record_call_event(session, body)
    await session.commit()
    receiver.publish_alarm(alarm)
    receiver.live.publish("call", _call_data(alarm, body))


def _call_data(alarm: QueueAlarm, body: CallEvent) -> dict[str, Any]:
    return {
        "alarm_pk": alarm.id,
        "device_id": body.device_id,
        "alarm_id": body.alarm_id,
        "call_id": body.call_id,
        "unit_id": body.unit_id,
        "event": body.event,
        "by": body.actor,
        "reason": body.reason,
        "callback": body.callback,
        "assigned_to": alarm.assigned_to,
    }


@router.post("/alarms/{alarm_pk}/help-coming", response_model=AlarmDetailOut)
async def help_coming(alarm_pk: DbId, receiver: ReceiverDep, session: SessionDep, user: QueueReader) -> QueueAlarm:
    alarm = await voice.help_coming(session, alarm_pk, user)
    await session.commit()
    receiver.notice_wake.set()
    receiver.publish_alarm(alarm)
    return alarm
