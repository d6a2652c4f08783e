"""The patrol queue: idempotent intake, the alarm lifecycle, ordering and escalation. No HTTP here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from alarm_receiver.clients.repository import clients_for_devices
from alarm_receiver.intake_batch import BatchWrites, NewItem
from alarm_receiver.intake_batch import IntakeRace as IntakeRace  # re-exported: the intake's refusal
from alarm_receiver.models import AlarmEvent, DeviceNotice, QueueAlarm, QueueRepeat, User
from alarm_receiver.repeats import batch_state, find_repeat, standing_repeat_ids, standing_repeats
from alarm_receiver.states import OPEN_STATES as OPEN_STATES  # re-exported: the queue's states
from alarm_receiver.states import State as State
from devices.types import TASK_TYPES, TECHNICAL_ALARM_TYPES
from trygg import audit
from trygg.db import dialect_insert, utcnow
from trygg.errors import CodedError
from wire.intake import IntakeAlarm, IntakeCancel, IntakeResolve, IntakeResult

# Due check-ins escalate by the gateway's own rule (not started within checkin_start_timeout_s -> patrol visit).
OWN_ESCALATION_TYPES = ("checkin_due",)


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    ON_SITE = "on_site"
    RESOLVE = "resolve"
    CANCEL = "cancel"


# The history line's code for each lifecycle action (the console translates it).
EVENT_CODES: dict[Action, str] = {
    Action.ACKNOWLEDGE: "alarm.acknowledged",
    Action.ASSIGN: "alarm.assigned",
    Action.ON_SITE: "alarm.on_site",
    Action.RESOLVE: "alarm.resolved",
    Action.CANCEL: "alarm.cancelled",
}

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[Action, tuple[frozenset[State], State]] = {
    Action.ACKNOWLEDGE: (frozenset({State.NEW}), State.ACKNOWLEDGED),
    Action.ASSIGN: (frozenset({State.ACKNOWLEDGED, State.ASSIGNED}), State.ASSIGNED),
    Action.ON_SITE: (frozenset({State.ASSIGNED}), State.ON_SITE),
    Action.RESOLVE: (frozenset({State.ACKNOWLEDGED, State.ASSIGNED, State.ON_SITE}), State.RESOLVED),
    Action.CANCEL: (frozenset({State.NEW, State.ACKNOWLEDGED, State.ASSIGNED}), State.CANCELLED),
}


class QueueError(CodedError):
    """A request the queue refuses; ``status`` is the HTTP status the API answers with, ``code`` and ``params``
    what the console translates, ``detail`` the English for API users (trygg/errors.py answers it)."""

    status = 409


class NotFound(QueueError):
    status = 404


class Conflict(QueueError):
    status = 409


class Invalid(QueueError):
    status = 422


def _params(note: str | None = None, **params: object) -> dict[str, object]:
    """An event's parameters: the person's own note (if any) under ``note``, never None values."""
    out = {k: v for k, v in params.items() if v is not None}
    if note:
        out["note"] = note
    return out


def _event(
    alarm: QueueAlarm,
    actor: str,
    action: str,
    frm: str | None,
    to: str | None,
    note: str | None,
    code: str,
    params: dict[str, object] | None = None,
) -> None:
    """One history line: ``note`` is the English text API users read, ``code``/``params`` what the console shows."""
    alarm.events.append(
        AlarmEvent(actor=actor, action=action, from_state=frm, to_state=to, note=note, code=code, params=params or {})
    )


async def _log(
    session: AsyncSession,
    device_id: str,
    alarm_id: str,
    details: dict[str, object],
    actor: str,
    action: str,
    **extra: object,
) -> None:
    """Every step of an alarm's handling also goes to the hash-chained supervision log (trygg/audit)."""
    client_ref = details.get("client_ref")
    await audit.append(
        session,
        actor=actor,
        action=f"alarm.{action}",
        client_ref=str(client_ref) if client_ref is not None else None,
        subject=f"alarm:{device_id}/{alarm_id}",
        details={k: v for k, v in extra.items() if v is not None},
    )


def _client_ref(item: IntakeAlarm) -> str | None:
    """The client reference the gateway's registry gave the alarm, if it is one."""
    ref = item.details.get("client_ref")
    return ref if isinstance(ref, str) and ref else None


async def ingest(
    session: AsyncSession, items: Sequence[IntakeAlarm | IntakeCancel | IntakeResolve]
) -> tuple[list[IntakeResult], list[int]]:
    """Store forwarded items once each. Returns per-item results and the ids of alarms that changed.

    An alarm of the same type from a device that already has one open for the same client (not a test) is collapsed
    into that queue item (issue 8): kept under its own key in ``queue_repeats``, counted on the item (``repeats``,
    ``last_repeat_at``, its priority raised if the repeat's is higher) and listed in the item's history. A flood from
    one device is then one line in the operators' queue, and other devices' alarms are not buried under it. A device
    that moved to another client starts a new item (another person, another address); tasks the gateway sets (check-in
    due, patrol visit) are never collapsed: each is its own check-in's work.

    What is already stored and what is open is read once per batch; what the batch's alarms write (items, history
    lines, repeats, supervision log entries) is decided item by item in order and written together, a few executemany
    statements per batch (:class:`BatchWrites`), before any cancel or resolve of the batch reads the queue."""
    dialect = dialect_insert(session)
    results: list[IntakeResult] = []
    changed: dict[int, None] = {}  # ordered, once each
    now = utcnow()
    alarms = [item for item in items if isinstance(item, IntakeAlarm)]
    known, stored_open = await batch_state(session, alarms, [s.value for s in OPEN_STATES])
    open_items: dict[tuple[str, str, int | None], NewItem | tuple[int, str]] = dict(stored_open)
    clients = await clients_for_devices(  # whose each alarm is: read once for the batch
        session, ((i.device_id, _client_ref(i)) for i in alarms)
    )
    writes = BatchWrites(now, open_items)
    for item in items:
        if isinstance(item, IntakeAlarm):
            key = (item.device_id, item.alarm_id)
            if key in known:
                results.append(IntakeResult(device_id=item.device_id, alarm_id=item.alarm_id, result="duplicate"))
                continue
            known.add(key)
            results.append(IntakeResult(device_id=item.device_id, alarm_id=item.alarm_id, result="created"))
            # The person behind the alarm (client register): the device's client now; none, or one without a
            # patrol area, is "routing missing" (technical alarms and installation tests go to no patrol).
            client = clients[(item.device_id, _client_ref(item))]
            client_id = client.id if client is not None else None
            collapsible = not item.is_test and item.type not in TASK_TYPES  # a task has its own check-in
            group = (item.device_id, item.type, client_id)
            target = open_items.get(group) if collapsible else None
            if target is not None:
                writes.collapse(item, target)
                continue
            routing_missing = (
                not item.is_test and item.type not in TECHNICAL_ALARM_TYPES and (client is None or not client.area)
            )
            new = NewItem(item, client, routing_missing, len(results) - 1)
            writes.create(new)
            if collapsible:
                open_items[group] = new
            continue
        await writes.write(session, dialect, results, changed)  # a cancel or resolve may concern an alarm above
        key_args = {"device_id": item.device_id, "alarm_id": item.alarm_id}
        alarm, repeat = await find_alarm(session, item.device_id, item.alarm_id)
        if alarm is None:
            results.append(IntakeResult(**key_args, result="unknown"))
            continue
        if isinstance(item, IntakeResolve):
            result, did_change = _resolve_by_gateway(alarm, item, now)
        else:
            result, did_change = await _cancel_by_device(session, alarm, repeat, item, now)
        if alarm.state not in OPEN_STATES:
            open_items.pop((alarm.device_id, alarm.type, alarm.client_id), None)
        results.append(IntakeResult(**key_args, result=result))
        if did_change:
            changed[alarm.id] = None
    await writes.write(session, dialect, results, changed)
    await session.flush()
    return results, list(changed)


def _resolve_by_gateway(alarm: QueueAlarm, item: IntakeResolve, now: datetime) -> tuple[str, bool]:
    """The gateway's outcome: English for API users, a code with parameters for the console (an older gateway sends
    no code: the console then shows the English it has). A resolution naming an alarm that was collapsed into an item
    resolves the item: the gateway says the condition is over."""
    if alarm.state not in OPEN_STATES:
        return "not_open", False
    params = _params(outcome_code=item.code, **(item.params or {}))
    _event(alarm, "gateway", "resolve", alarm.state, State.RESOLVED.value, item.outcome, "alarm.resolved", params)
    alarm.state = State.RESOLVED.value
    alarm.outcome = item.outcome
    alarm.outcome_code = item.code
    alarm.outcome_params = dict(item.params or {}) if item.code else None
    alarm.updated_at = now
    return "resolved", True


async def _cancel_by_device(
    session: AsyncSession, alarm: QueueAlarm, repeat: QueueRepeat | None, item: IntakeCancel, now: datetime
) -> tuple[str, bool]:
    """A device cancels one of its alarms: the item's own, or one collapsed into it (``repeat``).

    An item stands while any of its alarms stands: a device that cancels one press of several has not cancelled the
    others, so the item is cancelled only once its own alarm and every repeat are (until then a history line says
    which alarm was cancelled and how many still stand). Too late (patrol on site, resolved) is refused as before.
    Returns the result for the gateway and whether the item changed."""
    actor = f"device:{item.device_id}"
    if alarm.state == State.CANCELLED or (repeat is not None and repeat.cancelled_at is not None):
        return "cancelled", False  # cancelled before: a resend
    if repeat is None and alarm.device_cancelled_at is not None:
        return "cancelled", False
    if State(alarm.state) not in TRANSITIONS[Action.CANCEL][0]:
        # Too late to cancel (a patrol is on site or it is resolved): keep it, say so in its history.
        note = "device cancelled after the patrol was on site or the alarm was resolved"
        params: dict[str, object] = {"alarm_id": item.alarm_id} if repeat is not None else {}
        _event(alarm, actor, "cancel_refused", alarm.state, alarm.state, note, "alarm.cancel_refused", params)
        return "not_cancellable", True
    if repeat is not None:
        repeat.cancelled_at = now
    else:
        alarm.device_cancelled_at = now
    alarm.updated_at = now
    standing = await standing_repeats(session, alarm.id) + (1 if alarm.device_cancelled_at is None else 0)
    if standing:
        note = f"the device cancelled {item.alarm_id}; {standing} of its alarms in this item still stand"
        params = {"alarm_id": item.alarm_id, "standing": standing}
        _event(alarm, actor, "cancel_one", alarm.state, alarm.state, note, "alarm.cancelled_one_by_device", params)
        return "cancelled", True
    note = "cancelled on the device"
    _event(alarm, actor, "cancel", alarm.state, State.CANCELLED.value, note, "alarm.cancelled_by_device")
    alarm.state = State.CANCELLED.value
    return "cancelled", True


async def find_alarm(
    session: AsyncSession, device_id: str, alarm_id: str
) -> tuple[QueueAlarm | None, QueueRepeat | None]:
    """The queue item of a device's alarm (its events loaded): the alarm's own item, or the item it was collapsed
    into (then also the repeat's row). Every lookup by a device's alarm id goes through here (intake, voice)."""
    alarm = await _find(session, device_id, alarm_id)
    if alarm is not None:
        return alarm, None
    repeat = await find_repeat(session, device_id, alarm_id)
    if repeat is None:
        return None, None
    return await get_alarm(session, repeat.alarm_pk), repeat


async def _find(session: AsyncSession, device_id: str, alarm_id: str) -> QueueAlarm | None:
    return await session.scalar(
        select(QueueAlarm)
        .where(QueueAlarm.device_id == device_id, QueueAlarm.alarm_id == alarm_id)
        .options(selectinload(QueueAlarm.events))
    )


async def list_alarms(
    session: AsyncSession,
    *,
    states: Sequence[str] | None = None,
    min_priority: int | None = None,
    device_id: str | None = None,
    assigned_to: str | None = None,
    client_id: int | None = None,
    routing_missing: bool | None = None,
    limit: int = 500,
) -> Sequence[QueueAlarm]:
    """Operators' triage: new (unacknowledged) alarms first, then those in progress; inside each, priority
    (highest on top), then age (oldest first)."""
    waiting = case((QueueAlarm.state == State.NEW.value, 0), else_=1)
    stmt = select(QueueAlarm).order_by(waiting, QueueAlarm.priority.desc(), QueueAlarm.stored_at, QueueAlarm.id)
    if states:
        stmt = stmt.where(QueueAlarm.state.in_(states))
    if min_priority is not None:
        stmt = stmt.where(QueueAlarm.priority >= min_priority)
    if device_id is not None:
        stmt = stmt.where(QueueAlarm.device_id == device_id)
    if assigned_to is not None:
        stmt = stmt.where(QueueAlarm.assigned_to == assigned_to)
    if client_id is not None:
        stmt = stmt.where(QueueAlarm.client_id == client_id)
    if routing_missing is not None:
        stmt = stmt.where(QueueAlarm.routing_missing.is_(routing_missing))
    return (await session.scalars(stmt.limit(limit))).all()


async def get_alarm(session: AsyncSession, pk: int, *, for_update: bool = False) -> QueueAlarm:
    stmt = select(QueueAlarm).where(QueueAlarm.id == pk).options(selectinload(QueueAlarm.events))
    if for_update:
        stmt = stmt.with_for_update()
    alarm = await session.scalar(stmt)
    if alarm is None:
        raise NotFound("alarm.not_found", f"no alarm {pk}", id=pk)
    return alarm


async def transition(
    session: AsyncSession,
    pk: int,
    action: Action,
    actor: str,
    *,
    note: str | None = None,
    patrol: str | None = None,
    outcome: str | None = None,
) -> QueueAlarm:
    alarm = await get_alarm(session, pk, for_update=True)
    allowed, target = TRANSITIONS[action]
    if State(alarm.state) not in allowed:
        raise Conflict(
            "alarm.transition_refused",
            f"cannot {action.value} an alarm that is {alarm.state}",
            action=action.value,
            state=alarm.state,
        )
    params = _params(note)
    if action is Action.ASSIGN:
        role = await session.scalar(select(User.role).where(User.username == patrol, User.disabled.is_(False)))
        if role != "patrol":
            raise Invalid("alarm.not_a_patrol", f"{patrol!r} is not a patrol", patrol=patrol)
        alarm.assigned_to = patrol
        params = _params(note, patrol=patrol)
        note = f"assigned to {patrol}" + (f": {note}" if note else "")
    if action is Action.RESOLVE:
        alarm.outcome = outcome
        alarm.outcome_code = None  # an operator's outcome: one of the console's words, or the API user's own text
        alarm.outcome_params = None
        params = _params(note, outcome=outcome)
        note = f"outcome: {outcome}" + (f"; {note}" if note else "")
    _event(alarm, actor, action.value, alarm.state, target.value, note, EVENT_CODES[action], params)
    await _log(
        session,
        alarm.device_id,
        alarm.alarm_id,
        alarm.details,
        actor,
        action.value,
        from_state=alarm.state,
        to_state=target.value,
        note=note,
    )
    alarm.state = target.value
    alarm.updated_at = utcnow()
    if action is Action.ACKNOWLEDGE:
        await tell_help_coming(session, alarm)
    await session.flush()
    return alarm


async def tell_help_coming(session: AsyncSession, alarm: QueueAlarm) -> None:
    """Tell the device "help is coming", through the notice outbox (same transaction): for the item's own alarm and
    for every alarm collapsed into it that still stands (each press of the button hears it)."""
    ids = ([alarm.alarm_id] if alarm.device_cancelled_at is None else []) + await standing_repeat_ids(session, alarm.id)
    for alarm_id in ids:
        session.add(DeviceNotice(device_id=alarm.device_id, alarm_id=alarm_id, status="acknowledged"))


async def add_note(session: AsyncSession, pk: int, actor: str, note: str) -> QueueAlarm:
    alarm = await get_alarm(session, pk, for_update=True)
    _event(alarm, actor, "note", alarm.state, alarm.state, note, "alarm.note", _params(note))
    alarm.updated_at = utcnow()
    await session.flush()
    return alarm


async def escalate_due(
    session: AsyncSession, now: datetime, first_after_s: float, second_after_s: float
) -> list[QueueAlarm]:
    """Marks alarms still ``new`` past the first (level 1) or second (level 2) limit.

    Returns the alarms it changed.
    """
    changed: list[QueueAlarm] = []
    for level, after in ((2, second_after_s), (1, first_after_s)):
        rows = await session.scalars(
            select(QueueAlarm)
            .where(
                QueueAlarm.state == State.NEW.value,
                QueueAlarm.type.not_in(OWN_ESCALATION_TYPES),
                QueueAlarm.escalation_level < level,
                QueueAlarm.stored_at <= now - timedelta(seconds=after),
            )
            .options(selectinload(QueueAlarm.events))
        )
        for alarm in rows:
            if alarm in changed:
                continue
            alarm.escalation_level = level
            alarm.updated_at = now
            _event(
                alarm,
                "system",
                "escalated",
                alarm.state,
                alarm.state,
                f"level {level}: not acknowledged within {after:g} s",
                "alarm.escalated",
                {"level": level, "after_s": after},
            )
            changed.append(alarm)
    await session.flush()
    return changed
