"""Voice calls, the gateway's rules: who may be put through to which unit, and the record each call leaves.

- A unit's call rings only for a stored, open alarm of its own client (its own alarm or a paired pendant's);
  anything else is refused to the unit (``voice/end``) and logged.
- An operator answers, or calls back, only with a right the receiver issues on every request (wire/voice.py:
  an operator on an open alarm, a patrol on an open alarm assigned to it); a unit of another client than the
  alarm's is refused here. Every refusal is a coded error, logged in the supervision log.
- Each call's ringing, answer, end and failure go to the receiver (the alarm's history, the live feed that makes
  the console ring) and its end, with who and how long, to the supervision log. No audio anywhere: the relay
  (``gateway/voice/relay.py``) holds frames only in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import select

from devices import DeviceTopic, DeviceType
from devices.voice import VoiceCall
from gateway.errors import Conflict, Forbidden, GatewayError, NotFound, UpstreamFailed
from gateway.features import Subscription
from gateway.models import Device, StoredAlarm
from gateway.port import GatewayPort
from gateway.users import ApiUser
from gateway.voice.receiver_link import ReceiverLink
from gateway.voice.relay import CallEvent, CallFailed, CallInfo, VoiceRelayFeature
from trygg import audit
from wire.voice import CallEvent as WireCallEvent
from wire.voice import VoiceRightRequest

log = structlog.get_logger(__name__)


class VoiceFeature:
    name = "voice-calls"

    def __init__(self, port: GatewayPort, relay: VoiceRelayFeature, link: ReceiverLink | None = None) -> None:
        self.port = port
        self.relay = relay
        self.link = link or ReceiverLink(port.settings)
        self._pending: set[asyncio.Task[Any]] = set()
        relay.add_listener(self._on_event)
        relay.check_rings_with(self._ring_refusal)

    # --- Feature protocol -------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self.link.close()

    def on_connected(self) -> None:
        pass

    # --- entry points -----------------------------------------------------------------------------------
    def calls(self, user: ApiUser) -> list[CallInfo]:
        calls = self.relay.calls()
        return calls if user.role in ("operator", "admin") else [c for c in calls if c.operator == user.username]

    async def answer(self, call_id: str, token: str, user: ApiUser, sdp: str, sdp_type: str) -> dict[str, Any]:
        call = self.relay.call(call_id)
        if call is None:
            raise NotFound("voice.call_not_found", "no such call (it may have ended)", call_id=call_id)
        subject = f"alarm:{call.alarm_device_id}/{call.alarm_id}"
        request = VoiceRightRequest(device_id=call.alarm_device_id, alarm_id=call.alarm_id, purpose="answer")
        right = await self._right(token, user, request, subject)
        return await self._connect(right.username, sdp, sdp_type, subject, call_id=call_id)

    async def callback(
        self, token: str, user: ApiUser, device_id: str, alarm_id: str, unit_id: str | None, sdp: str, sdp_type: str
    ) -> dict[str, Any]:
        subject = f"alarm:{device_id}/{alarm_id}"
        request = VoiceRightRequest(device_id=device_id, alarm_id=alarm_id, purpose="callback")
        right = await self._right(token, user, request, subject)
        async with self.port.sessions() as session:
            alarm_device = await session.get(Device, device_id)
            client = alarm_device.client_ref if alarm_device is not None else None
            unit = await session.get(Device, unit_id) if unit_id is not None else None
            candidates = (
                []
                if client is None
                else list(
                    await session.scalars(
                        select(Device.id).where(Device.client_ref == client, Device.retired_at.is_(None))
                    )
                )
            )
        if unit_id is not None and (unit is None or client is None or unit.client_ref != client):
            other = Forbidden("voice.other_client", "that unit is not in this client's home", unit_id=unit_id)
            raise await self._refused(user, other, client, subject)
        talkers = set(self.relay.voice_units())
        unit_id = unit_id or next((d for d in [device_id, *sorted(candidates)] if d in talkers), None)
        if unit_id is None or unit_id not in talkers:
            none = Conflict("voice.no_voice_unit", "the client has no unit with a speaker and a microphone")
            raise await self._refused(user, none, client, subject)
        return await self._connect(
            right.username, sdp, sdp_type, subject, unit_id=unit_id, alarm_device_id=device_id, alarm_id=alarm_id
        )

    async def hang_up(self, call_id: str, user: ApiUser) -> None:
        call = self.relay.call(call_id)
        if call is None:
            raise NotFound("voice.call_not_found", "no such call (it may have ended)", call_id=call_id)
        if user.role != "admin" and call.operator != user.username:
            error = Forbidden("voice.not_your_call", "only the person in the call hangs it up")
            raise await self._refused(user, error, None, f"alarm:{call.alarm_device_id}/{call.alarm_id}")
        await self.relay.hang_up(call_id, "operator")

    # --- inside -----------------------------------------------------------------------------------------
    async def _right(self, token: str, user: ApiUser, request: VoiceRightRequest, subject: str) -> Any:
        try:
            return await self.link.right(token, request)
        except GatewayError as exc:
            log.warning("voice right refused by the receiver", user=user.username, subject=subject, code=exc.code)
            raise

    async def _connect(self, operator: str, sdp: str, sdp_type: str, subject: str, **target: Any) -> dict[str, Any]:
        settings = self.port.settings
        try:
            return await self.relay.connect(
                operator=operator,
                offer_sdp=sdp,
                offer_type=sdp_type,
                answer_timeout_s=settings.voice_answer_timeout_s,
                max_s=settings.voice_max_call_s,
                **target,
            )
        except CallFailed as exc:
            # said plainly to the operator; the alarm stays in the queue as it is
            raise UpstreamFailed(exc.code, exc.detail) from exc

    async def _refused(self, user: ApiUser, error: GatewayError, client_ref: str | None, subject: str) -> GatewayError:
        async with self.port.sessions.begin() as session:
            await audit.append(
                session,
                actor=user.username,
                action="voice.refused",
                client_ref=client_ref,
                subject=subject,
                details={"role": user.role, "code": error.code},
            )
        log.warning("voice request refused", user=user.username, subject=subject, code=error.code)
        return error

    async def _ring_refusal(self, unit_id: str, ring: VoiceCall) -> str | None:
        """Why a unit's call may not ring (or None): the alarm must be stored, open, and of the unit's client."""
        alarm_device_id = ring.alarm_device_id or unit_id
        async with self.port.sessions() as session:
            unit = await session.get(Device, unit_id)
            device = await session.get(Device, alarm_device_id)
            alarm = await session.get(StoredAlarm, (alarm_device_id, ring.alarm_id))
        why: str | None = None
        if unit is None or unit.retired_at is not None or unit.type != DeviceType.BASE_UNIT.value:
            why = "not_a_voice_unit"
        elif alarm is None or device is None:
            why = "unknown_alarm"
        elif device.client_ref is None or device.client_ref != unit.client_ref:
            why = "other_client"
        elif alarm.cancelled_at is not None or alarm.resolved_at is not None:
            why = "alarm_closed"
        if why is not None:
            async with self.port.sessions.begin() as session:
                await audit.append(
                    session,
                    actor=unit_id,
                    action="voice.ring_refused",
                    client_ref=unit.client_ref if unit is not None else None,
                    subject=f"alarm:{alarm_device_id}/{ring.alarm_id}",
                    details={"call_id": ring.call_id, "code": why},
                )
        return why

    def _on_event(self, event: CallEvent) -> None:
        task = asyncio.get_running_loop().create_task(self._record(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _record(self, event: CallEvent) -> None:
        actor = event.operator if event.kind in ("answered", "ended") and event.operator else event.unit_id
        if event.kind == "ended" and event.reason == "unit_ended":
            actor = event.unit_id
        wire = WireCallEvent(
            device_id=event.alarm_device_id,
            alarm_id=event.alarm_id,
            call_id=event.call_id,
            unit_id=event.unit_id,
            event=event.kind,
            actor=actor,
            callback=event.callback,
            reason=event.reason,
            duration_s=event.duration_s,
        )
        if event.kind in ("ended", "failed"):
            try:
                async with self.port.sessions.begin() as session:
                    device = await session.get(Device, event.unit_id)
                    await audit.append(
                        session,
                        actor=event.operator or event.unit_id,
                        action=f"voice.call_{event.kind}",
                        client_ref=device.client_ref if device is not None else None,
                        subject=f"alarm:{event.alarm_device_id}/{event.alarm_id}",
                        details={
                            "call_id": event.call_id,
                            "unit_id": event.unit_id,
                            "operator": event.operator,
                            "reason": event.reason,
                            "duration_s": event.duration_s,
                            "callback": event.callback,
                        },
                    )
            except Exception as exc:
                log.exception("could not log a call", call_id=event.call_id, error=str(exc))
        await self.link.report(wire)
