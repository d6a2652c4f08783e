"""Alarms collapsed into an open queue item of the same device and type (issue 8): what one intake batch reads
once (keys already stored, open items) and adds to each item (count, latest time, priority) in one UPDATE each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.models import AlarmEvent, QueueAlarm, QueueRepeat
from wire.intake import IntakeAlarm


class Repeats:
    """What the alarms collapsed into one item in this batch add to it."""

    __slots__ = ("count", "latest", "priority")

    def __init__(self) -> None:
        self.count = 0
        self.latest: datetime | None = None
        self.priority = 0

    def add(self, item: IntakeAlarm) -> None:
        self.count += 1
        self.latest = item.stored_at if self.latest is None else max(self.latest, item.stored_at)
        self.priority = max(self.priority, item.priority)


class RepeatBatch:
    """The repeats of one intake batch, written together: their rows and history lines each as one executemany
    INSERT (a flood is thousands of them: the ORM's unit of work cost ~0.5 ms each), then one UPDATE per item."""

    def __init__(self) -> None:
        self.items: dict[int, Repeats] = {}
        self._rows: list[dict[str, object]] = []
        self._events: list[dict[str, object]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, item: IntakeAlarm, pk: int, state: str, now: datetime) -> None:
        self.items.setdefault(pk, Repeats()).add(item)
        self._rows.append(
            {
                "alarm_pk": pk,
                "device_id": item.device_id,
                "alarm_id": item.alarm_id,
                "priority": item.priority,
                "device_ts": item.device_ts,
                "stored_at": item.stored_at,
                "received_at": now,
                "cancelled_at": None,
            }
        )
        self._events.append(
            {
                "alarm_pk": pk,
                "at": now,
                "actor": "gateway",
                "action": "repeated",
                "from_state": state,
                "to_state": state,
                "note": f"the same alarm again from the device: {item.alarm_id}",
                "code": "alarm.repeated",
                "params": {"alarm_id": item.alarm_id},
            }
        )

    async def flush(self, session: AsyncSession, now: datetime) -> None:
        """Write what was added and start over (before anything in the batch reads these items)."""
        if not self.items:
            return
        await session.execute(insert(QueueRepeat), self._rows)
        await session.execute(insert(AlarmEvent), self._events)
        await apply_repeats(session, self.items, now)
        self.items, self._rows, self._events = {}, [], []


async def apply_repeats(session: AsyncSession, repeated: dict[int, Repeats], now: datetime) -> None:
    """One UPDATE per item alarms were collapsed into (not one per repeat)."""
    for pk, r in repeated.items():
        await session.execute(
            update(QueueAlarm)
            .where(QueueAlarm.id == pk)
            .values(
                repeats=QueueAlarm.repeats + r.count,
                last_repeat_at=case(
                    (QueueAlarm.last_repeat_at.is_(None), r.latest),
                    (QueueAlarm.last_repeat_at < r.latest, r.latest),
                    else_=QueueAlarm.last_repeat_at,
                ),
                priority=case((QueueAlarm.priority < r.priority, r.priority), else_=QueueAlarm.priority),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )


OpenItems = dict[tuple[str, str, int | None], tuple[int, str]]
"""(device, type, client) -> (item id, state) of the open item a new alarm of that kind is collapsed into."""


async def batch_state(
    session: AsyncSession, alarms: Sequence[IntakeAlarm], open_states: Sequence[str]
) -> tuple[set[tuple[str, str]], OpenItems]:
    """For a batch's alarms: the keys already stored (as items or repeats), and the open, non-test item of each
    (device, type, client) they come from (the oldest, if there are several)."""
    if not alarms:
        return set(), {}
    devices = {a.device_id for a in alarms}
    ids = {a.alarm_id for a in alarms}
    keys = {(a.device_id, a.alarm_id) for a in alarms}
    known: set[tuple[str, str]] = set()
    for table in (QueueAlarm, QueueRepeat):
        rows = await session.execute(
            select(table.device_id, table.alarm_id).where(table.device_id.in_(devices), table.alarm_id.in_(ids))
        )
        known |= {(d, a) for d, a in rows.all()} & keys
    opened = await session.execute(
        select(QueueAlarm.device_id, QueueAlarm.type, QueueAlarm.client_id, QueueAlarm.id, QueueAlarm.state)
        .where(
            QueueAlarm.device_id.in_(devices),
            QueueAlarm.state.in_(open_states),
            QueueAlarm.is_test.is_(False),
        )
        .order_by(QueueAlarm.id.desc())
    )
    open_items = {(d, t, c): (pk, state) for d, t, c, pk, state in opened.all()}  # the oldest wins: newest first
    return known, open_items


async def find_repeat(session: AsyncSession, device_id: str, alarm_id: str) -> QueueRepeat | None:
    """The row of an alarm that was collapsed into an item, if it was."""
    return await session.scalar(
        select(QueueRepeat).where(QueueRepeat.device_id == device_id, QueueRepeat.alarm_id == alarm_id)
    )


async def standing_repeats(session: AsyncSession, alarm_pk: int) -> int:
    """How many of the alarms collapsed into an item the device has not cancelled."""
    count = await session.scalar(
        select(func.count()).where(QueueRepeat.alarm_pk == alarm_pk, QueueRepeat.cancelled_at.is_(None))
    )
    return int(count or 0)


async def standing_repeat_ids(session: AsyncSession, alarm_pk: int) -> list[str]:
    """The alarm ids collapsed into an item that the device has not cancelled (each hears "help is coming")."""
    rows = await session.scalars(
        select(QueueRepeat.alarm_id)
        .where(QueueRepeat.alarm_pk == alarm_pk, QueueRepeat.cancelled_at.is_(None))
        .order_by(QueueRepeat.id)
    )
    return list(rows.all())
