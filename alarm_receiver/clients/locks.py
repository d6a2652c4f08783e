"""Digital locks on the receiver's side: who may unlock (a short-lived grant signed for one alarm, one lock, one
patrol), and what the gateway reports back (lock states, unlocks sent or refused), written into the alarm's
history and the supervision log. A door that opens after an unlock marks the alarm on site."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver import queue
from alarm_receiver.clients.models import Client, ClientDevice, LockState
from alarm_receiver.models import AlarmEvent, QueueAlarm, User
from trygg import audit, grants
from trygg.db import utcnow
from trygg.errors import CodedError
from wire.locks import LockEvent


class LockRefused(CodedError):
    status = 409


class NoLock(LockRefused):
    status = 404


class NotConfigured(LockRefused):
    status = 503


# refusal code -> the history line's code
REFUSAL_LINES = {
    "lock.grant_expired": "alarm.lock_refused_expired",
    "lock.grant_other_patrol": "alarm.lock_refused_other_patrol",
    "lock.alarm_not_open": "alarm.lock_refused_not_open",
    "lock.grant_invalid": "alarm.lock_refused_invalid",
}


async def lock_of(session: AsyncSession, client_id: int | None) -> str | None:
    if client_id is None:
        return None
    return await session.scalar(
        select(ClientDevice.device_id)
        .where(ClientDevice.client_id == client_id, ClientDevice.kind == "lock", ClientDevice.unlinked_at.is_(None))
        .order_by(ClientDevice.id)
        .limit(1)
    )


async def _client_ref(session: AsyncSession, client_id: int | None) -> str | None:
    return await session.scalar(select(Client.ref).where(Client.id == client_id)) if client_id else None


def _line(alarm: QueueAlarm, actor: str, action: str, note: str, code: str, **params: object) -> None:
    alarm.events.append(
        AlarmEvent(
            actor=actor, action=action, from_state=alarm.state, to_state=alarm.state, note=note, code=code,
            params={k: v for k, v in params.items() if v is not None},
        )
    )  # fmt: skip
    alarm.updated_at = utcnow()


async def issue_grant(
    session: AsyncSession, user: User, alarm_pk: int, key: Ed25519PrivateKey | None, ttl_s: float
) -> tuple[grants.Grant, str]:
    """A grant for the patrol assigned to this open alarm, for its client's lock; refused (and the refusal written
    into the alarm's history) otherwise."""
    alarm = await queue.get_alarm(session, alarm_pk, for_update=True)
    if user.role == "patrol" and alarm.assigned_to != user.username:
        raise LockRefused("lock.not_your_alarm", f"alarm {alarm_pk} is not assigned to you", alarm=alarm_pk)
    try:
        if alarm.state not in (queue.State.ASSIGNED, queue.State.ON_SITE):
            raise LockRefused("lock.alarm_not_open", f"alarm {alarm_pk} is {alarm.state}", alarm=alarm_pk)
        lock = await lock_of(session, alarm.client_id)
        if lock is None:
            raise NoLock("lock.no_lock", "the client has no digital lock", alarm=alarm_pk)
        if key is None:
            raise NotConfigured("lock.not_configured", "the receiver has no grant signing key")
    except LockRefused as exc:
        await record_refusal(session, alarm, user.username, exc.code)
        raise
    grant, text = grants.issue(
        key, alarm=alarm.id, lock=lock, patrol=alarm.assigned_to or user.username, ttl_s=ttl_s, now=utcnow()
    )
    await audit.append(
        session,
        actor=user.username,
        action="lock.grant_issued",
        client_ref=await _client_ref(session, alarm.client_id),
        subject=f"alarm:{alarm.device_id}/{alarm.alarm_id}",
        details={"alarm": alarm.id, "lock": lock, "grant": grant.jti, "expires": grant.exp},
    )
    return grant, text


async def record_refusal(session: AsyncSession, alarm: QueueAlarm, patrol: str, code: str) -> None:
    _line(
        alarm, patrol, "lock_refused", f"unlock refused: {code}", REFUSAL_LINES.get(code, "alarm.lock_refused_other"),
        patrol=patrol, refusal=code,
    )  # fmt: skip
    await audit.append(
        session,
        actor=patrol,
        action="lock.unlock_refused",
        client_ref=await _client_ref(session, alarm.client_id),
        subject=f"alarm:{alarm.device_id}/{alarm.alarm_id}",
        details={"alarm": alarm.id, "code": code},
    )
    await session.flush()


async def _alarm(session: AsyncSession, pk: int | None) -> QueueAlarm | None:
    if pk is None:
        return None
    try:
        return await queue.get_alarm(session, pk, for_update=True)
    except queue.NotFound:
        return None


async def apply_event(session: AsyncSession, ev: LockEvent) -> list[int]:
    """One report from the gateway; returns the ids of alarms whose history changed."""
    changed: list[int] = []
    client_id = await session.scalar(
        select(ClientDevice.client_id).where(
            ClientDevice.device_id == ev.device_id, ClientDevice.kind == "lock", ClientDevice.unlinked_at.is_(None)
        )
    )
    client_ref = await _client_ref(session, client_id)
    if ev.kind in ("unlock_sent", "unlock_refused"):
        alarm = await _alarm(session, ev.alarm)
        patrol = ev.patrol or "?"
        if alarm is not None and ev.kind == "unlock_sent":
            _line(alarm, patrol, "lock_unlocked", f"unlocked {ev.device_id} for {patrol}", "alarm.lock_unlocked",
                  patrol=patrol, lock=ev.device_id)  # fmt: skip
            changed.append(alarm.id)
        elif alarm is not None:
            line = REFUSAL_LINES.get(ev.code or "", "alarm.lock_refused_other")
            _line(alarm, patrol, "lock_refused", f"unlock refused: {ev.code}", line, patrol=patrol, refusal=ev.code)
            changed.append(alarm.id)
        await audit.append(
            session,
            actor=f"gateway:{patrol}",
            action=f"lock.{ev.kind}",
            client_ref=client_ref,
            subject=f"lock-{ev.device_id}",
            details={"alarm": ev.alarm, "code": ev.code, "grant": ev.grant_id},
        )
        await session.flush()
        return changed

    state = await session.get(LockState, ev.device_id)
    before = (state.state, state.door) if state is not None else (None, None)
    lock = ev.lock or (state.state if state is not None else "locked")
    door = ev.door if ev.door is not None else (state.door if state is not None and ev.lock != "offline" else None)
    if state is None:
        state = LockState(device_id=ev.device_id, state=lock, door=door, battery_pct=ev.battery_pct, updated_at=ev.at)
        session.add(state)
    else:
        state.state, state.door, state.updated_at = lock, door, ev.at
        if ev.battery_pct is not None:
            state.battery_pct = ev.battery_pct
    if (lock, door) == before or client_id is None:
        await session.flush()
        return changed
    await audit.append(
        session,
        actor=f"lock:{ev.device_id}",
        action="lock.state",
        client_ref=client_ref,
        subject=f"lock-{ev.device_id}",
        details={"lock": lock, "door": door},
    )
    opened = door == "open" and before[1] != "open"
    for alarm in await queue.list_alarms(session, states=[s.value for s in queue.OPEN_STATES], client_id=client_id):
        full = await queue.get_alarm(session, alarm.id, for_update=True)
        code = f"alarm.door_{door}" if door is not None and door != before[1] else f"alarm.lock_{lock}_state"
        _line(full, f"lock:{ev.device_id}", "lock_state", f"lock {lock}, door {door}", code, lock=ev.device_id)
        if opened and full.state == queue.State.ASSIGNED and any(e.action == "lock_unlocked" for e in full.events):
            await queue.transition(
                session, full.id, queue.Action.ON_SITE, f"lock:{ev.device_id}", note="door opened after the unlock"
            )
        changed.append(full.id)
    await session.flush()
    return changed


def expires_at(grant: grants.Grant) -> datetime:
    return datetime.fromtimestamp(grant.exp, UTC)
