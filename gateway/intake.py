"""Durable alarm intake: validated alarms are stored with their outbox row in one transaction.

One writer task takes items in arrival order and commits them in batches (group commit): messages of
one device are stored in the order they came, many devices share one commit, and the device is told
``stored`` only after that commit. The store is keyed by (device_id, alarm_id), so a resend is answered
again but never stored twice.

An alarm from a device is filed by the gateway's rules, not the device's: its priority never below its type's
default for a life-safety type (``devices.effective_priority``), the client reference from the registry, the
installation-test flag from the gateway's own window (``is_test`` on the item), and whatever the device sent beyond
the contract kept apart as ``device_extra``, never interpreted.

Dead letters (``gateway/dead_letters.py``) are written here too, in the same group commits. A batch that fails is
retried as a whole while the store is down or busy (:func:`is_transient`: the message is not at fault, it must
not be lost); a batch that fails on its content is stored item by item, and only the item the store refuses is
answered ``UNSTORABLE`` and kept as a dead letter. One bad item never stops the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, bindparam, select, tuple_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from devices import DEFAULT_PRIORITY, AlarmCancel, AlarmMessage, effective_priority
from gateway import dead_letters
from gateway.models import Device, OutboxRow, StoredAlarm
from gateway.records import Letter, Outcome, Received
from trygg.db import dialect_insert, utcnow

log = structlog.get_logger(__name__)
# The tables themselves (Core), for the alarm path's bulk statements: no ORM unit of work per row.
_ALARMS = cast(Table, StoredAlarm.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
# The statements every commit runs, built once (per dialect for the INSERTs): a statement object reused keeps its
# SQLAlchemy cache key, so a commit does not build and key a statement again (about a tenth of the writer's CPU at
# DC-09's one alarm per connection, ~10 alarms per commit).
_REGISTRY = select(Device.id, Device.retired_at, Device.client_ref, Device.area).where(
    Device.id.in_(bindparam("registry_ids", expanding=True))
)
_MARK_DELIVERED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("delivered_ids", expanding=True)))
    .values(
        delivered_at=bindparam("delivered_now", type_=_OUTBOX.c.delivered_at.type),
        attempts=_OUTBOX.c.attempts + 1,
    )
)
# the dialect's insert -> (alarms ON CONFLICT DO NOTHING, outbox, outbox RETURNING ids)
_INSERTS: dict[Any, tuple[Any, Any, Any]] = {}


def _inserts(session: AsyncSession) -> tuple[Any, Any, Any]:
    """The alarms' insert, the outbox's, and the outbox's returning the new rows' ids (for the forwarder)."""
    insert = dialect_insert(session)
    built = _INSERTS.get(insert)
    if built is None:
        alarms = (
            insert(_ALARMS)
            .on_conflict_do_nothing(index_elements=["device_id", "alarm_id"])
            .returning(_ALARMS.c.device_id, _ALARMS.c.alarm_id)
        )
        outbox = insert(_OUTBOX)
        built = _INSERTS[insert] = (
            alarms,
            outbox,
            outbox.returning(_OUTBOX.c.id, _OUTBOX.c.device_id, _OUTBOX.c.alarm_id),
        )
    return built


def is_transient(exc: BaseException) -> bool:
    """The store (or the way to it) is down, busy or full: retry later, the message is not at fault.

    Everything else a statement raises (a value the store refuses, a bug in how an item is written) belongs to the
    item: it is isolated, answered and kept as a dead letter instead of stopping the intake."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return isinstance(exc, sa_exc.TimeoutError | OSError | TimeoutError)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The gateway closes an alarm it raised itself (a device back online, a check-in done)."""

    alarm_id: str
    outcome: str  # English, for API users
    actor: str = "gateway"
    code: str | None = None  # the outcome as a code with parameters, for the console
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _LetterMessage:
    """A dead letter queued for the writer (``letter_item``)."""

    letter: Letter


@dataclass(slots=True)
class IntakeItem:
    device_id: str
    message: AlarmMessage | AlarmCancel | Resolution | _LetterMessage
    received_at: datetime = field(default_factory=utcnow)
    is_test: bool = False  # an installation test (the gateway's window): travels the whole chain, not to the patrol
    from_device: bool = True  # False: an alarm the gateway raises itself, filed with ``details``
    details: dict[str, Any] = field(default_factory=dict)  # JSON values; only for the gateway's own alarms
    received: Received | None = None  # the device's message as it came (kept if the store refuses the item)


@dataclass(slots=True)
class NewRows:
    """The outbox rows one commit wrote, handed to the forwarder after the commit (``IntakeWriter(on_rows=...)``):
    each new alarm's outbox id with the row of ``intake_alarms`` as written (the forwarder sends it without reading
    it back); ``others`` counts the cancel and resolution rows, which the forwarder reads from the store instead."""

    alarms: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    others: int = 0


def letter_item(letter: Letter) -> IntakeItem:
    return IntakeItem(letter.device_id or "", _LetterMessage(letter), received_at=letter.received_at)


async def store_batch(
    session: AsyncSession,
    items: Sequence[IntakeItem],
    bounds: dead_letters.Bounds | None = None,
    new_rows: NewRows | None = None,
) -> list[Outcome]:
    """Store a batch inside the caller's transaction; returns one outcome per item, in order. ``new_rows``, when
    given, collects the outbox rows written (valid once the transaction commits)."""
    letters = [item.message.letter for item in items if isinstance(item.message, _LetterMessage)]
    if letters:
        bounds = bounds or dead_letters.Bounds()
        dead_letters.add(session, letters, bounds)
        await dead_letters.prune(session, bounds)
        if len(letters) == len(items):
            return [Outcome.DEAD_LETTERED] * len(items)
    ids = {item.device_id for item in items if not isinstance(item.message, _LetterMessage)}
    found = (await session.execute(_REGISTRY, {"registry_ids": list(ids)})).all()
    known = {device_id: retired_at for device_id, retired_at, _, _ in found}
    # what the operators' queue needs of the registry: whose device, and which area (its filter)
    registry = {
        device_id: {k: v for k, v in (("client_ref", client_ref), ("area", area)) if v}
        for device_id, _, client_ref, area in found
    }
    outcomes: list[Outcome] = []
    run: list[tuple[int, IntakeItem, AlarmMessage]] = []  # consecutive alarms: stored with one statement
    for item in items:
        msg = item.message
        if isinstance(msg, AlarmMessage) and item.device_id in known and known[item.device_id] is None:
            run.append((len(outcomes), item, msg))
            outcomes.append(Outcome.STORED)  # settled by _store_alarms below
            continue
        if run:  # a cancel or resolution after alarms of this batch sees them stored, as one by one would
            await _store_alarms(session, run, registry, outcomes, new_rows)
            run = []
        if isinstance(msg, _LetterMessage):
            outcomes.append(Outcome.DEAD_LETTERED)
            continue
        if item.device_id not in known:
            outcomes.append(Outcome.UNKNOWN_DEVICE)
            continue
        if known[item.device_id] is not None:
            outcomes.append(Outcome.RETIRED_DEVICE)
            continue
        if isinstance(msg, Resolution):
            outcomes.append(await _resolve(session, item.device_id, msg, item.received_at))
            if new_rows is not None and outcomes[-1] is Outcome.RESOLVED:
                new_rows.others += 1
        else:
            exists = await session.scalar(
                select(StoredAlarm.cancelled_at.is_not(None)).where(
                    StoredAlarm.device_id == item.device_id, StoredAlarm.alarm_id == msg.alarm_id
                )
            )
            if exists is None:
                outcomes.append(Outcome.UNKNOWN_ALARM)
            elif exists:
                outcomes.append(Outcome.CANCEL_DUPLICATE)
            else:
                await session.execute(
                    update(StoredAlarm)
                    .where(StoredAlarm.device_id == item.device_id, StoredAlarm.alarm_id == msg.alarm_id)
                    .values(cancelled_at=item.received_at)
                )
                session.add(OutboxRow(kind="cancel", device_id=item.device_id, alarm_id=msg.alarm_id))
                outcomes.append(Outcome.CANCELLED)
                if new_rows is not None:
                    new_rows.others += 1
    if run:
        await _store_alarms(session, run, registry, outcomes, new_rows)
    await session.flush()
    return outcomes


async def _store_alarms(
    session: AsyncSession,
    run: Sequence[tuple[int, IntakeItem, AlarmMessage]],
    registry: dict[str, dict[str, Any]],
    outcomes: list[Outcome],
    new_rows: NewRows | None = None,
) -> None:
    """Alarms of known, active devices that came one after another: one INSERT for all of them (ON CONFLICT DO
    NOTHING, RETURNING the keys it stored) and one for their outbox rows, in arrival order, instead of two
    statements per alarm. A key already stored, or twice in this run, is a resend (same type and timestamp) or an
    id reused for a new alarm; its outcome is set in ``outcomes`` at the item's position."""
    insert_alarms, insert_outbox, insert_outbox_returning = _inserts(session)
    first: dict[tuple[str, str], AlarmMessage] = {}  # each key's first alarm in this run: the one inserted
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for _, item, msg in run:
        key = (item.device_id, msg.alarm_id)
        if key in first:
            continue
        first[key] = msg
        priority, payload = _filed(item, msg)
        payload.update(registry.get(item.device_id, {}))
        rows[key] = {
            "device_id": item.device_id,
            "alarm_id": msg.alarm_id,
            "type": msg.type.value,
            "priority": priority,
            "device_ts": msg.ts,
            "stored_at": item.received_at,
            "payload": payload,
            "is_test": item.is_test,
        }
    # executemany of one cached statement: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues", sized
    # to the driver's parameter limit) without compiling a statement per batch size, and without the ORM
    result = await session.execute(insert_alarms, list(rows.values()))
    created = {(device_id, alarm_id) for device_id, alarm_id in result.all()}
    existing: dict[tuple[str, str], tuple[str, datetime]] = {}
    if len(created) < len(first):  # resends: what is stored under their keys decides duplicate or reused
        stored = await session.execute(
            select(StoredAlarm.device_id, StoredAlarm.alarm_id, StoredAlarm.type, StoredAlarm.device_ts).where(
                tuple_(StoredAlarm.device_id, StoredAlarm.alarm_id).in_([k for k in first if k not in created])
            )
        )
        existing = {(d, a): (t, ts) for d, a, t, ts in stored.all()}
    outbox: list[dict[str, Any]] = []
    for position, item, msg in run:
        key = (item.device_id, msg.alarm_id)
        if key in created:
            created.discard(key)  # the first with this key is new; a second one in the run is its resend
            outbox.append({"kind": "alarm", "device_id": item.device_id, "alarm_id": msg.alarm_id})
            outcomes[position] = Outcome.STORED
            continue
        # A resend carries the same type and timestamp; anything else reuses an id for a new alarm, which must
        # not be swallowed as a duplicate.
        type_, ts = existing.get(key) or (first[key].type.value, first[key].ts)
        same = type_ == msg.type.value and ts == msg.ts
        outcomes[position] = Outcome.DUPLICATE if same else Outcome.ALARM_ID_REUSED
    if not outbox:
        return
    if new_rows is None:
        await session.execute(insert_outbox, outbox)
        return
    # The new rows' ids, for the forwarder: RETURNING in no particular order (SQLAlchemy sends an ordered RETURNING
    # on SQLite one row per statement), matched by key, which is unique among a run's new alarms.
    returned = await session.execute(insert_outbox_returning, outbox)
    new_rows.alarms.extend((outbox_id, rows[(device_id, alarm_id)]) for outbox_id, device_id, alarm_id in returned)


def _filed(item: IntakeItem, msg: AlarmMessage) -> tuple[int, dict[str, Any]]:
    """The priority and the stored payload of an alarm: a device's by the gateway's rules, the gateway's own as
    raised. Nothing a device sends outside the contract's fields lands beside them: it is ``device_extra``."""
    payload = msg.contract_fields()
    if not item.from_device:
        priority = msg.priority if msg.priority is not None else DEFAULT_PRIORITY[msg.type]
        return priority, payload | item.details
    extra = msg.device_extra()
    if extra:
        payload["device_extra"] = extra
    if item.received is not None:
        payload["protocol"] = item.received.protocol
    return effective_priority(msg.type, msg.priority), payload


async def _resolve(session: AsyncSession, device_id: str, msg: Resolution, at: datetime) -> Outcome:
    where = (StoredAlarm.device_id == device_id, StoredAlarm.alarm_id == msg.alarm_id)
    resolved = await session.scalar(select(StoredAlarm.resolved_at.is_not(None)).where(*where))
    if resolved is None:
        return Outcome.UNKNOWN_ALARM
    if resolved:
        return Outcome.RESOLVE_DUPLICATE
    await session.execute(update(StoredAlarm).where(*where).values(resolved_at=at))
    session.add(
        OutboxRow(
            kind="resolve",
            device_id=device_id,
            alarm_id=msg.alarm_id,
            payload={"outcome": msg.outcome, "actor": msg.actor, "resolved_at": at.isoformat()}
            | ({"code": msg.code, "params": msg.params or {}} if msg.code else {}),
        )
    )
    return Outcome.RESOLVED
