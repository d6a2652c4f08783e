"""Alarms collapsed into an open queue item of the same device and type (issue 8): what one intake batch reads
once (keys already stored, open items) and adds to the items (count, latest time, priority) in one executemany
UPDATE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, func, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.models import QueueAlarm, QueueRepeat
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
    """The repeats of one intake batch, written together: their rows as one executemany INSERT (a flood is thousands
    of them: the ORM's unit of work cost ~0.5 ms each), their history lines in the batch's list of history lines
    (``events``, written by the caller in one executemany with the batch's other lines), then one executemany UPDATE
    for the items they were collapsed into. Cached Core statements on the session's connection: compiled once, no ORM
    bookkeeping per row."""

    def __init__(self) -> None:
        self.items: dict[int, Repeats] = {}
        self._rows: list[dict[str, object]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, item: IntakeAlarm, pk: int, state: str, now: datetime, events: list[dict[str, object]]) -> None:
        """One alarm collapsed into the item ``pk``; its history line goes to ``events``."""
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
        events.append(
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
        """Write the rows and the items' counts and start over (the history lines are the caller's to write)."""
        if not self.items:
            return
        conn = await session.connection()
        await conn.execute(_INSERT_REPEAT, self._rows)
        await apply_repeats(session, self.items, now)
        self.items, self._rows = {}, []


_REPEATS = cast(Table, QueueRepeat.__table__)
_ALARMS = cast(Table, QueueAlarm.__table__)
_INSERT_REPEAT = insert(_REPEATS)
_LATEST = bindparam("b_latest", type_=_ALARMS.c.last_repeat_at.type)
_PRIORITY = bindparam("b_priority", type_=_ALARMS.c.priority.type)
# One statement for every item a batch's repeats were collapsed into, run as one executemany (not one UPDATE built
# and compiled per item): the count added, the latest time kept, the priority raised if a repeat's is higher.
_UPDATE_ITEM = (
    update(_ALARMS)
    .where(_ALARMS.c.id == bindparam("b_pk"))
    .values(
        repeats=_ALARMS.c.repeats + bindparam("b_count", type_=_ALARMS.c.repeats.type),
        last_repeat_at=case(
            (_ALARMS.c.last_repeat_at.is_(None), _LATEST),
            (_ALARMS.c.last_repeat_at < _LATEST, _LATEST),
            else_=_ALARMS.c.last_repeat_at,
        ),
        priority=case((_ALARMS.c.priority < _PRIORITY, _PRIORITY), else_=_ALARMS.c.priority),
        updated_at=bindparam("b_now", type_=_ALARMS.c.updated_at.type),
    )
)


async def apply_repeats(session: AsyncSession, repeated: dict[int, Repeats], now: datetime) -> None:
    """One executemany UPDATE for all the items alarms were collapsed into (not one statement per repeat or item)."""
    if not repeated:
        return
    conn = await session.connection()
    await conn.execute(
        _UPDATE_ITEM,
        [
            {"b_pk": pk, "b_count": r.count, "b_latest": r.latest, "b_priority": r.priority, "b_now": now}
            for pk, r in repeated.items()
        ],
    )


OpenItems = dict[tuple[str, str, int | None], tuple[int, str]]
"""(device, type, client) -> (item id, state) of the open item a new alarm of that kind is collapsed into."""


def _keys_in(table: Table) -> Any:
    return select(table.c.device_id, table.c.alarm_id).where(
        table.c.device_id.in_(bindparam("devices", expanding=True)),
        table.c.alarm_id.in_(bindparam("ids", expanding=True)),
    )


# Built once (a statement built per batch costs its construction and cache key every time): the keys of a batch
# already stored, as items or as repeats, in one statement; the open, non-test items of the batch's devices.
_KNOWN = union_all(_keys_in(_ALARMS), _keys_in(_REPEATS))
_OPEN = (
    select(_ALARMS.c.device_id, _ALARMS.c.type, _ALARMS.c.client_id, _ALARMS.c.id, _ALARMS.c.state)
    .where(
        _ALARMS.c.device_id.in_(bindparam("devices", expanding=True)),
        _ALARMS.c.state.in_(bindparam("states", expanding=True)),
        _ALARMS.c.is_test.is_(False),
    )
    .order_by(_ALARMS.c.id.desc())
)


async def batch_state(
    session: AsyncSession, alarms: Sequence[IntakeAlarm], open_states: Sequence[str]
) -> tuple[set[tuple[str, str]], OpenItems]:
    """For a batch's alarms: the keys already stored (as items or repeats), and the open, non-test item of each
    (device, type, client) they come from (the oldest, if there are several). Two statements."""
    if not alarms:
        return set(), {}
    devices = list({a.device_id for a in alarms})
    keys = {(a.device_id, a.alarm_id) for a in alarms}
    await session.flush()  # read on the connection (no autoflush there): what the session holds is written first
    conn = await session.connection()
    rows = await conn.execute(_KNOWN, {"devices": devices, "ids": list({a.alarm_id for a in alarms})})
    known = {(d, a) for d, a in rows.all()} & keys
    opened = await conn.execute(_OPEN, {"devices": devices, "states": list(open_states)})
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
