"""What one intake batch's alarms write (alarm_receiver/queue.py, ``ingest``): decided item by item, in order, and
written together as one executemany each of cached Core statements: new queue items, history lines, repeats, the
items repeats went into, installation tests, supervision log entries (issue 8, the storm)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver import metrics
from alarm_receiver.clients.models import Client
from alarm_receiver.models import AlarmEvent, DeviceNotice, QueueAlarm
from alarm_receiver.repeats import RepeatBatch
from alarm_receiver.states import State
from trygg import audit
from trygg.errors import CodedError
from wire.intake import IntakeAlarm, IntakeResult


def _entry(
    device_id: str, alarm_id: str, details: dict[str, object], actor: str, action: str, **extra: object
) -> audit.Pending:
    """A supervision log entry as ``alarm_receiver.queue._log`` writes it, for :func:`audit.append_many` (an intake
    batch writes its entries in one go)."""
    client_ref = details.get("client_ref")
    return audit.Pending(
        actor=actor,
        action=f"alarm.{action}",
        client_ref=str(client_ref) if client_ref is not None else None,
        subject=f"alarm:{device_id}/{alarm_id}",
        details={k: v for k, v in extra.items() if v is not None},
    )


@functools.cache
def _insert_alarms(dialect_insert: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, device_id, alarm_id of queue items, built once per dialect and
    run as one executemany per batch (SQLAlchemy sends it as multi-row INSERTs): the ids come back matched to their
    items by key, not by order (SQLite does not promise the order of a multi-row INSERT's RETURNING)."""
    table = cast(Table, QueueAlarm.__table__)
    return (
        dialect_insert(table)
        .on_conflict_do_nothing(index_elements=["device_id", "alarm_id"])
        .returning(table.c.id, table.c.device_id, table.c.alarm_id)
    )


_EVENTS = cast(Table, AlarmEvent.__table__)
_ALARMS = cast(Table, QueueAlarm.__table__)
_INSERT_EVENTS = insert(_EVENTS)  # the batch's history lines, one executemany
_CONFIRM_TEST = (  # installation tests of the batch, one executemany
    update(_ALARMS)
    .where(_ALARMS.c.id == bindparam("b_pk"))
    .values(
        state=State.RESOLVED.value,
        outcome="installation test: chain confirmed",
        outcome_code="alarm.test_confirmed",
        outcome_params={},
    )
)


class IntakeRace(CodedError):
    """Another receiver stored an alarm of this batch while this one was storing it, and alarms of the batch were to
    be collapsed into it: nothing of the batch is kept, the gateway sends it again (503) and then finds it stored."""

    status = 503


class NewItem:
    """A queue item this batch creates; its id once written (later alarms of the batch may be collapsed into it)."""

    __slots__ = ("client", "index", "item", "pk", "routing_missing", "targeted")

    def __init__(self, item: IntakeAlarm, client: Client | None, routing_missing: bool, index: int) -> None:
        self.item = item
        self.client = client
        self.routing_missing = routing_missing
        self.index = index  # its place in the batch's results
        self.pk: int | None = None
        self.targeted = False  # an alarm of the batch is collapsed into it


class BatchWrites:
    """One batch's alarms up to its next cancel or resolve, written together by :meth:`write`: the new items as one
    executemany INSERT, then the history lines, the repeats, the installation tests' outcome and the supervision log
    entries each as one executemany, in the order of the alarms (the same rows and the same chain as one alarm at a
    time)."""

    def __init__(self, now: datetime, open_items: dict[tuple[str, str, int | None], NewItem | tuple[int, str]]) -> None:
        self.now = now
        self.open_items = open_items  # (device, type, client) -> the open item a new alarm of that kind goes into
        self.new: list[NewItem] = []
        self.steps: list[NewItem | tuple[IntakeAlarm, NewItem | tuple[int, str]]] = []

    def create(self, new: NewItem) -> None:
        self.new.append(new)
        self.steps.append(new)

    def collapse(self, item: IntakeAlarm, into: NewItem | tuple[int, str]) -> None:
        if isinstance(into, NewItem):
            into.targeted = True
        self.steps.append((item, into))

    async def write(
        self, session: AsyncSession, dialect: Any, results: list[IntakeResult], changed: dict[int, None]
    ) -> None:
        if not self.steps:
            return
        now, steps, new = self.now, self.steps, self.new
        self.steps, self.new = [], []
        await session.flush()  # what a cancel or resolve before these alarms changed comes first (history order)
        conn = await session.connection()
        if new:
            rows = [
                dict(
                    device_id=n.item.device_id,
                    alarm_id=n.item.alarm_id,
                    type=n.item.type,
                    priority=n.item.priority,
                    state=State.NEW.value,
                    escalation_level=0,
                    is_test=n.item.is_test,
                    device_ts=n.item.device_ts,
                    stored_at=n.item.stored_at,
                    received_at=now,
                    updated_at=now,
                    details=n.item.details,
                    client_id=n.client.id if n.client is not None else None,
                    routing_missing=n.routing_missing,
                )
                for n in new
            ]
            ids = {(d, a): pk for pk, d, a in (await conn.execute(_insert_alarms(dialect), rows)).all()}
            for n in new:
                n.pk = ids.get((n.item.device_id, n.item.alarm_id))
                if n.pk is None:  # stored meanwhile by another receiver (PostgreSQL): a resend, as before
                    if n.targeted:
                        raise IntakeRace("intake.race", "an alarm of this batch was stored meanwhile; send it again")
                    key = {"device_id": n.item.device_id, "alarm_id": n.item.alarm_id}
                    results[n.index] = IntakeResult(**key, result="duplicate")
                    group = (n.item.device_id, n.item.type, n.client.id if n.client is not None else None)
                    if self.open_items.get(group) is n:
                        del self.open_items[group]
        events: list[dict[str, object]] = []
        entries: list[audit.Pending] = []
        tests: list[dict[str, object]] = []
        repeated = RepeatBatch()
        for step in steps:
            if isinstance(step, NewItem):
                if step.pk is None:
                    continue
                item = step.item
                events.append(_line(step.pk, now, "gateway", "received", None, State.NEW.value, None, "alarm.received"))
                entries.append(
                    _entry(
                        item.device_id,
                        item.alarm_id,
                        item.details,
                        "gateway",
                        "received",
                        type=item.type,
                        priority=item.priority,
                        test=item.is_test or None,
                    )
                )
                if step.routing_missing:  # marked on the row (no history line: the alarm itself is as it came)
                    metrics.ROUTING_MISSING.labels("no_client" if step.client is None else "no_area").inc()
                if item.is_test:  # the whole chain is proven; the patrol never sees it; the device hears "acknowledged"
                    tests.append({"b_pk": step.pk})
                    note = "installation test, not shown to the patrol"
                    events.append(
                        _line(step.pk, now, "system", "test_confirmed", State.NEW.value, State.RESOLVED.value, note)
                    )
                    session.add(DeviceNotice(device_id=item.device_id, alarm_id=item.alarm_id, status="acknowledged"))
                changed[step.pk] = None
                continue
            item, into = step
            pk, state = (cast(int, into.pk), State.NEW.value) if isinstance(into, NewItem) else into
            repeated.add(item, pk, state, now, events)
            _add_repeat(session, item, pk, state, entries)
            changed[pk] = None
        if events:
            await conn.execute(_INSERT_EVENTS, events)
        await repeated.flush(session, now)
        if tests:
            await conn.execute(_CONFIRM_TEST, tests)
        await audit.append_many(session, entries)


def _line(
    pk: int,
    at: datetime,
    actor: str,
    action: str,
    frm: str | None,
    to: str | None,
    note: str | None,
    code: str | None = None,
) -> dict[str, object]:
    """One history line's row for :data:`_INSERT_EVENTS` (every row with the same keys: one executemany)."""
    return {
        "alarm_pk": pk,
        "at": at,
        "actor": actor,
        "action": action,
        "from_state": frm,
        "to_state": to,
        "note": note,
        "code": code or f"alarm.{action}",
        "params": {},
    }


def _add_repeat(session: AsyncSession, item: IntakeAlarm, pk: int, state: str, entries: list[audit.Pending]) -> None:
    """An alarm collapsed into the open item ``pk`` (its row and history line: :class:`RepeatBatch`): a line in the
    supervision log; an item already in hand tells the device "help is coming" for this alarm too."""
    key = {"device_id": item.device_id, "alarm_id": item.alarm_id}
    entries.append(
        _entry(
            item.device_id,
            item.alarm_id,
            item.details,
            "gateway",
            "repeated",
            into=pk,
            type=item.type,
            priority=item.priority,
        )
    )
    if state != State.NEW.value:  # acknowledged already: help is coming for this press as well
        session.add(DeviceNotice(**key, status="acknowledged"))
