"""The store logic on both databases: SQLite (default) and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from alarm_receiver import queue
from alarm_receiver.auth import Role, create_user, issue_token, revoke_token, user_for_token
from alarm_receiver.clients.models import Client
from alarm_receiver.db import migrate as migrate_receiver
from alarm_receiver.logins import LoginRefused, Logins
from alarm_receiver.models import AlarmEvent, DeviceNotice, QueueAlarm, QueueRepeat
from alarm_receiver.schemas import IntakeAlarm, IntakeCancel, IntakeResolve
from alarm_receiver.service import alarm_message, alarm_messages
from devices import AlarmCancel, AlarmMessage, AlarmType, DeviceType
from gateway.db import migrate as migrate_gateway
from gateway.intake import IntakeItem, Outcome, store_batch
from gateway.models import OutboxRow, StoredAlarm
from gateway.registry import add_device, retire_device
from testing.wait import eventually
from trygg import audit
from trygg.audit.models import LogEntry
from trygg.db import create_engine, session_factory
from trygg.settings import Settings


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    # one database for both services (as docker-compose.yml has it): two chains side by side
    for _ in range(2):  # idempotent
        await migrate_gateway(eng)
        await migrate_receiver(eng)
    try:
        yield eng
    finally:
        await eng.dispose()


PRESSED_AT = "2026-11-23T02:30:00Z"


def alarm(alarm_id: str, type_: AlarmType = AlarmType.FALL, ts: str = PRESSED_AT, **kw: object) -> AlarmMessage:
    return AlarmMessage.model_validate_json(json.dumps({"alarm_id": alarm_id, "type": type_, "ts": ts, **kw}))


async def test_intake_stores_once_with_outbox_and_refuses_what_it_must(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        await add_device(s, "p1", DeviceType.PENDANT)
        await add_device(s, "gone", DeviceType.PENDANT)
        await retire_device(s, "gone")
    async with sessions.begin() as s:
        outcomes = await store_batch(
            s,
            [
                IntakeItem("p1", alarm("a1")),
                IntakeItem("p1", alarm("a1")),  # the same alarm twice in one batch
                IntakeItem("p1", alarm("a2", AlarmType.ASSISTANCE, priority=9)),
                IntakeItem("nobody", alarm("x")),
                IntakeItem("gone", alarm("y")),
                IntakeItem("p1", AlarmCancel(alarm_id="nope", ts=datetime.now(UTC))),
            ],
        )
    assert outcomes == [
        Outcome.STORED,
        Outcome.DUPLICATE,
        Outcome.STORED,
        Outcome.UNKNOWN_DEVICE,
        Outcome.RETIRED_DEVICE,
        Outcome.UNKNOWN_ALARM,
    ]
    async with sessions.begin() as s:
        again = await store_batch(
            s,
            [
                IntakeItem("p1", alarm("a1")),
                IntakeItem("p1", AlarmCancel(alarm_id="a1", ts=datetime.now(UTC))),
            ],
        )
        twice = await store_batch(s, [IntakeItem("p1", AlarmCancel(alarm_id="a1", ts=datetime.now(UTC)))])
        reused = await store_batch(
            s, [IntakeItem("p1", alarm("a2", AlarmType.FALL)), IntakeItem("p1", alarm("a2", ts="2026-11-23T03:00:00Z"))]
        )
    assert again == [Outcome.DUPLICATE, Outcome.CANCELLED]
    assert twice == [Outcome.CANCEL_DUPLICATE]
    assert reused == [Outcome.ALARM_ID_REUSED, Outcome.ALARM_ID_REUSED]  # a2 was an assistance alarm
    async with sessions() as s:
        rows = (await s.execute(select(OutboxRow.kind, OutboxRow.alarm_id).order_by(OutboxRow.id))).all()
        assert [tuple(r) for r in rows] == [("alarm", "a1"), ("alarm", "a2"), ("cancel", "a1")]
        a2 = await s.get(StoredAlarm, ("p1", "a2"))
        assert a2 is not None and a2.priority == 9 and a2.device_ts.tzinfo is not None
        a1 = await s.get(StoredAlarm, ("p1", "a1"))
        assert a1 is not None and a1.priority == 8  # fall default


async def test_intake_batch_keeps_arrival_order_across_kinds_and_statements(engine: AsyncEngine) -> None:
    """Alarms of a batch are stored together (a few statements), yet a cancel sees exactly the alarms that came
    before it, and a batch larger than one statement's rows stores every alarm once, its outbox in arrival order."""
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        await add_device(s, "p1", DeviceType.PENDANT)
        await add_device(s, "p2", DeviceType.PENDANT)
    now = datetime.now(UTC)
    async with sessions.begin() as s:
        outcomes = await store_batch(
            s,
            [
                IntakeItem("p1", AlarmCancel(alarm_id="b1", ts=now)),  # before its alarm: nothing to cancel yet
                IntakeItem("p1", alarm("b1")),
                IntakeItem("p2", alarm("b1")),  # same id, other device: another alarm
                IntakeItem("p1", AlarmCancel(alarm_id="b1", ts=now)),
                IntakeItem("p1", alarm("b1")),  # the resend after the cancel
                IntakeItem("p1", alarm("b2")),
            ],
        )
    assert outcomes == [
        Outcome.UNKNOWN_ALARM,
        Outcome.STORED,
        Outcome.STORED,
        Outcome.CANCELLED,
        Outcome.DUPLICATE,
        Outcome.STORED,
    ]
    many = [IntakeItem(f"p{i % 2 + 1}", alarm(f"m{i:04d}")) for i in range(1203)]
    many.insert(700, IntakeItem("p2", alarm("m0001")))  # a resend of an alarm a statement before
    async with sessions.begin() as s:
        outcomes = await store_batch(s, many)
    assert outcomes.count(Outcome.STORED) == 1203
    assert outcomes[700] is Outcome.DUPLICATE
    async with sessions() as s:
        rows = (
            await s.execute(select(OutboxRow.kind, OutboxRow.device_id, OutboxRow.alarm_id).order_by(OutboxRow.id))
        ).all()
        assert [tuple(r) for r in rows[:4]] == [
            ("alarm", "p1", "b1"),
            ("alarm", "p2", "b1"),
            ("cancel", "p1", "b1"),
            ("alarm", "p1", "b2"),
        ]
        assert [r.alarm_id for r in rows[4:]] == [f"m{i:04d}" for i in range(1203)]
        assert await s.scalar(select(func.count()).select_from(StoredAlarm)) == 3 + 1203


async def test_a_batch_stores_as_its_items_one_by_one_would(engine: AsyncEngine) -> None:
    """Alarms are stored with one statement per run of alarms (issue 8, CPU): outcomes and outbox order are those
    of storing each item in its own transaction, for new alarms, resends, reused ids, a cancel of an alarm stored
    earlier in the same batch and a cancel that comes before its alarm."""
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        for device_id in ("batched", "single"):
            await add_device(s, device_id, DeviceType.PENDANT)

    def items(device_id: str) -> list[IntakeItem]:
        now = datetime.now(UTC)
        return [
            IntakeItem(device_id, alarm("b1")),
            IntakeItem(device_id, AlarmCancel(alarm_id="b3", ts=now)),  # before its alarm: unknown then
            IntakeItem(device_id, alarm("b2", AlarmType.ASSISTANCE)),
            IntakeItem(device_id, alarm("b1")),  # a resend in the same batch
            IntakeItem(device_id, alarm("b2", ts="2026-11-23T03:00:00Z")),  # b2 reused for another alarm
            IntakeItem(device_id, AlarmCancel(alarm_id="b1", ts=now)),  # stored earlier in this batch
            IntakeItem(device_id, alarm("b3")),
            IntakeItem(device_id, alarm("b4")),
            IntakeItem("nobody", alarm("b5")),
            IntakeItem(device_id, alarm("b5")),
            IntakeItem(device_id, alarm("b4")),
        ]

    async with sessions.begin() as s:
        batched = await store_batch(s, items("batched"))
    single = []
    for item in items("single"):
        async with sessions.begin() as s:
            single += await store_batch(s, [item])
    assert batched == single
    assert batched.count(Outcome.STORED) == 5 and Outcome.ALARM_ID_REUSED in batched
    async with sessions() as s:
        order = {
            device_id: [
                tuple(r)
                for r in await s.execute(
                    select(OutboxRow.kind, OutboxRow.alarm_id)
                    .where(OutboxRow.device_id == device_id)
                    .order_by(OutboxRow.id)
                )
            ]
            for device_id in ("batched", "single")
        }
    assert order["batched"] == order["single"]
    assert order["batched"] == [
        ("alarm", "b1"),
        ("alarm", "b2"),
        ("cancel", "b1"),
        ("alarm", "b3"),
        ("alarm", "b4"),
        ("alarm", "b5"),
    ]


def intake_alarm(device_id: str, alarm_id: str, priority: int, age_s: float = 0, type_: str = "fall") -> IntakeAlarm:
    t = datetime.now(UTC) - timedelta(seconds=age_s)
    return IntakeAlarm(
        kind="alarm",
        device_id=device_id,
        alarm_id=alarm_id,
        type=type_,
        priority=priority,
        device_ts=t,
        stored_at=t,
    )


async def test_receiver_queue_idempotent_ordered_lifecycle_and_escalation(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        await create_user(s, "car1", "pw-long-enough", Role.PATROL)
        results, changed = await queue.ingest(
            s,
            [
                # two of d1's own, of different types (one of the same type would be collapsed into the first)
                intake_alarm("d1", "low", 3, age_s=100, type_="assistance"),
                intake_alarm("d1", "high-new", 8, age_s=10),
                intake_alarm("d2", "high-old", 8, age_s=200),
            ],
        )
    assert [r.result for r in results] == ["created"] * 3 and len(changed) == 3
    async with sessions.begin() as s:
        results, changed = await queue.ingest(s, [intake_alarm("d1", "low", 3, type_="assistance")])
    assert [r.result for r in results] == ["duplicate"] and changed == []

    async with sessions() as s:
        order = [a.alarm_id for a in await queue.list_alarms(s)]
    assert order == ["high-old", "high-new", "low"]

    async with sessions.begin() as s:
        escalated = await queue.escalate_due(s, datetime.now(UTC), 60, 180)
    assert {(a.alarm_id, a.escalation_level) for a in escalated} == {("high-old", 2), ("low", 1)}
    async with sessions.begin() as s:
        assert await queue.escalate_due(s, datetime.now(UTC), 60, 180) == []

    async with sessions() as s:
        pk = {a.alarm_id: a.id for a in await queue.list_alarms(s)}
    async with sessions.begin() as s:
        await queue.transition(s, pk["high-new"], queue.Action.ACKNOWLEDGE, "op", note="on it")
        await queue.transition(s, pk["high-new"], queue.Action.ASSIGN, "op", patrol="car1")
        with pytest.raises(queue.Conflict):
            await queue.transition(s, pk["high-new"], queue.Action.ACKNOWLEDGE, "op")
        with pytest.raises(queue.Invalid):
            await queue.transition(s, pk["high-new"], queue.Action.ASSIGN, "op", patrol="op")
    async with sessions.begin() as s:
        await queue.transition(s, pk["high-new"], queue.Action.ON_SITE, "car1")
        results, _ = await queue.ingest(
            s,
            [IntakeCancel(kind="cancel", device_id="d1", alarm_id="high-new", cancelled_at=datetime.now(UTC))],
        )
        assert [r.result for r in results] == ["not_cancellable"]
        done = await queue.transition(s, pk["high-new"], queue.Action.RESOLVE, "car1", outcome="fine")
        assert [e.action for e in done.events] == [
            "received",
            "acknowledge",
            "assign",
            "on_site",
            "cancel_refused",
            "resolve",
        ]
    async with sessions() as s:
        notices = (await s.scalars(select(DeviceNotice))).all()
        assert [(n.device_id, n.alarm_id, n.status) for n in notices] == [("d1", "high-new", "acknowledged")]
        assert await s.scalar(select(func.count()).select_from(DeviceNotice)) == 1


def cancel(device_id: str, alarm_id: str) -> IntakeCancel:
    return IntakeCancel(kind="cancel", device_id=device_id, alarm_id=alarm_id, cancelled_at=datetime.now(UTC))


async def test_repeats_collapse_into_the_open_item_and_stay_findable(engine: AsyncEngine) -> None:
    """Issue 8, point 6: a device's repeats of an open alarm are one item with a count, the latest time, a raised
    priority and a history line each; a resend of a repeat is a duplicate; each is found by its own id."""
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        results, changed = await queue.ingest(
            s,
            [
                intake_alarm("d1", "a1", 5, age_s=30, type_="assistance"),
                intake_alarm("d1", "a2", 5, age_s=20, type_="assistance"),
                intake_alarm("d1", "f1", 8, age_s=20),  # another type: its own item
                intake_alarm("d2", "b1", 5, age_s=20, type_="assistance"),  # another device: its own item
            ],
        )
    assert [r.result for r in results] == ["created"] * 4 and len(changed) == 3
    async with sessions.begin() as s:
        results, _ = await queue.ingest(
            s, [intake_alarm("d1", "a3", 7, age_s=10, type_="assistance"), intake_alarm("d1", "a2", 5)]
        )
    assert [r.result for r in results] == ["created", "duplicate"]  # a resend of a repeat stays a duplicate
    async with sessions() as s:
        items = {a.alarm_id: a for a in await queue.list_alarms(s)}
        assert set(items) == {"a1", "f1", "b1"}
        a1 = items["a1"]
        assert (a1.repeats, a1.priority, a1.escalation_level) == (2, 7, 0)  # raised to the repeat's priority
        assert a1.last_repeat_at is not None and abs((datetime.now(UTC) - a1.last_repeat_at).total_seconds() - 10) < 5
        assert a1.stored_at < a1.last_repeat_at  # the item's own age is kept: escalation counts from the first
        found, repeat = await queue.find_alarm(s, "d1", "a3")
        assert found is not None and found.id == a1.id and repeat is not None and repeat.alarm_id == "a3"
        events = (await queue.get_alarm(s, a1.id)).events
        assert [(e.action, e.code, e.params) for e in events] == [
            ("received", "alarm.received", {}),
            ("repeated", "alarm.repeated", {"alarm_id": "a2"}),
            ("repeated", "alarm.repeated", {"alarm_id": "a3"}),
        ]
    async with sessions.begin() as s:  # escalation is not reset by a repeat: the item is as old as its first alarm
        escalated = await queue.escalate_due(s, datetime.now(UTC), 25, 600)
    assert {a.alarm_id for a in escalated} == {"a1"}

    # The device cancels its first press: the item stands while a2 and a3 do, and says so; then the rest.
    async with sessions.begin() as s:
        results, changed = await queue.ingest(s, [cancel("d1", "a1"), cancel("d1", "a2")])
    assert [r.result for r in results] == ["cancelled", "cancelled"] and changed == [a1.id]
    async with sessions() as s:
        item = await queue.get_alarm(s, a1.id)
        assert item.state == "new"
        standing = [e.params["standing"] for e in item.events if e.code == "alarm.cancelled_one_by_device"]
        assert standing == [2, 1]
    async with sessions.begin() as s:
        results, _ = await queue.ingest(s, [cancel("d1", "a2"), cancel("d1", "a3"), cancel("d1", "nope")])
    assert [r.result for r in results] == ["cancelled", "cancelled", "unknown"]  # a resend changes nothing
    async with sessions() as s:
        item = await queue.get_alarm(s, a1.id)
        assert item.state == "cancelled" and item.events[-1].code == "alarm.cancelled_by_device"

    # A new press after that is a new item; acknowledging it tells the device for each standing press.
    async with sessions.begin() as s:
        await queue.ingest(
            s, [intake_alarm("d1", "a4", 5, type_="assistance"), intake_alarm("d1", "a5", 5, type_="assistance")]
        )
    async with sessions() as s:
        a4 = next(a for a in await queue.list_alarms(s) if a.alarm_id == "a4")
        assert a4.repeats == 1
    async with sessions.begin() as s:
        await queue.transition(s, a4.id, queue.Action.ACKNOWLEDGE, "op")
        # a press after the acknowledgement is collapsed too, and hears "help is coming" at once
        await queue.ingest(s, [intake_alarm("d1", "a6", 5, type_="assistance")])
    async with sessions() as s:
        notices = [(n.alarm_id, n.status) for n in (await s.scalars(select(DeviceNotice))).all()]
        assert sorted(notices) == [("a4", "acknowledged"), ("a5", "acknowledged"), ("a6", "acknowledged")]
        # too late to cancel one press once the patrol is on its way: refused, in the history
    async with sessions.begin() as s:
        await create_user(s, "car1", "pw-long-enough", Role.PATROL)
        await queue.transition(s, a4.id, queue.Action.ASSIGN, "op", patrol="car1")
        await queue.transition(s, a4.id, queue.Action.ON_SITE, "car1")
        results, _ = await queue.ingest(s, [cancel("d1", "a5")])
    assert [r.result for r in results] == ["not_cancellable"]
    async with sessions() as s:
        item = await queue.get_alarm(s, a4.id)
        assert item.state == "on_site" and item.events[-1].params == {"alarm_id": "a5"}


async def test_tokens_expire_and_revoke(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        user = await create_user(s, "op", "pw-long-enough", Role.OPERATOR)
    logins = Logins(sessions, Settings())
    for name, password in (("op", "wrong"), ("nobody", "pw-long-enough")):
        with pytest.raises(LoginRefused) as refused:
            await logins.login(name, password, "127.0.0.1")
        assert refused.value.status_code == 401 and refused.value.code == "auth.bad_credentials"
    assert (await logins.login("op", "pw-long-enough", "127.0.0.1")).role == "operator"
    logins.close()
    async with sessions.begin() as s:
        token, _ = await issue_token(s, user, ttl_s=3600)
        expired, _ = await issue_token(s, user, ttl_s=-1)
    async with sessions.begin() as s:
        assert (await user_for_token(s, token)) is not None
        assert await user_for_token(s, expired) is None
        await revoke_token(s, token)
    async with sessions() as s:
        assert await user_for_token(s, token) is None


async def test_a_receiver_batch_writes_as_its_items_one_by_one_would(engine: AsyncEngine) -> None:
    """The receiver writes a batch's items, history lines, repeats and supervision log entries as a few executemany
    statements (issue 8, the storm): the queue, each item's history, the repeats, the notices and the log are those
    of ingesting each item in its own transaction, for new items, repeats (of an item stored before and of one
    created in the same batch), resends, an installation test, tasks, a cancel and a resolve in the middle of the
    batch, and alarms after them; the supervision log's chain verifies."""
    sessions = session_factory(engine)
    t0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

    def a(device: str, alarm_id: str, type_: str = "assistance", priority: int = 5, **kw: object) -> IntakeAlarm:
        at = t0 + timedelta(seconds=int(alarm_id[1:]) if alarm_id[1:].isdigit() else 0)
        return IntakeAlarm(
            device_id=device, alarm_id=alarm_id, type=type_, priority=priority, device_ts=at, stored_at=at, **kw
        )

    def items(d: str) -> list[IntakeAlarm | IntakeCancel | IntakeResolve]:
        now = datetime.now(UTC)
        return [
            a(d, "a1"),
            a(d, "a2", priority=7),  # collapsed into a1, created in this batch; raises its priority
            a(d, "f1", "fall", 8),
            a(d, "a1"),  # a resend in the same batch
            a(d, "t1", is_test=True),  # an installation test: its own item, resolved at once
            a(d, "k1", "checkin_due"),  # tasks are never collapsed
            a(d, "k2", "checkin_due"),
            IntakeCancel(device_id=d, alarm_id="a2", cancelled_at=now),  # a repeat of this batch, cancelled
            a(d, "a3"),  # after the cancel: still into a1
            IntakeResolve(device_id=d, alarm_id="f1", outcome="done", resolved_at=now, code="x.done"),
            a(d, "f2", "fall", 8),  # f1 is resolved: a new item
            a(d, "f3", "fall", 9),  # into f2
            IntakeCancel(device_id=d, alarm_id="nope", cancelled_at=now),
            a(d + "x", "a4"),  # another device
        ]

    async with sessions.begin() as s:  # an open item stored before, which the batch's alarms are collapsed into
        for d in ("batched", "single"):
            await queue.ingest(s, [a(d, "o0", "smoke", 6)])
    async with sessions.begin() as s:
        batched, _ = await queue.ingest(s, [*items("batched"), a("batched", "o1", "smoke", 4)])
    single = []
    for item in [*items("single"), a("single", "o1", "smoke", 4)]:
        async with sessions.begin() as s:
            single += (await queue.ingest(s, [item]))[0]
    assert [(r.alarm_id, r.result) for r in batched] == [(r.alarm_id, r.result) for r in single]
    assert [r.result for r in batched].count("created") == 11

    async def written(d: str) -> dict[str, Any]:
        key: dict[int, str] = {}

        def named(details: dict[str, object]) -> dict[str, object]:  # the item a repeat went into, by its alarm id
            return {k: key[v] if k == "into" and isinstance(v, int) else v for k, v in details.items()}

        async with sessions() as s:
            alarms = (await s.scalars(select(QueueAlarm).where(QueueAlarm.device_id.in_([d, d + "x"])))).all()
            key.update({x.id: x.alarm_id for x in alarms})
            rows = {
                x.alarm_id: (x.type, x.state, x.priority, x.repeats, x.last_repeat_at, x.is_test, x.outcome_code)
                for x in alarms
            }
            events = (
                await s.execute(select(AlarmEvent).where(AlarmEvent.alarm_pk.in_(key)).order_by(AlarmEvent.id))
            ).scalars()
            history = [
                (key[e.alarm_pk], e.actor.replace(d, "D"), e.action, e.from_state, e.to_state, e.code, e.params)
                for e in events
            ]
            history.sort(key=lambda line: line[0])  # each item's own lines in their order (items' lines interleave)
            repeats = [
                (r.alarm_id, key[r.alarm_pk], r.priority, r.cancelled_at is not None)
                for r in (await s.scalars(select(QueueRepeat).where(QueueRepeat.alarm_pk.in_(key)))).all()
            ]
            notices = [
                (n.alarm_id, n.status)
                for n in (await s.scalars(select(DeviceNotice).where(DeviceNotice.device_id == d))).all()
            ]
            log = [
                (
                    e.action,
                    e.subject.split("/")[1],
                    named(e.details),
                )
                for e in (await s.scalars(select(LogEntry).order_by(LogEntry.id))).all()
                if e.subject is not None and e.subject.startswith(f"alarm:{d}/")
            ]
        return {"rows": rows, "history": history, "repeats": repeats, "notices": notices, "log": log}

    got, want = await written("batched"), await written("single")
    assert got == want
    assert got["rows"]["a1"][1:4] == ("new", 7, 2) and got["rows"]["f2"][3] == 1 and got["rows"]["o0"][3] == 1
    assert got["rows"]["t1"][1] == "resolved" and got["notices"] == [("t1", "acknowledged")]
    async with sessions() as s:
        assert (await audit.verify(s)).ok


async def test_an_alarm_another_receiver_stores_meanwhile(pg_fresh_url: str) -> None:
    """Two receivers on one PostgreSQL get the same alarm at once (a batch sent again to the other receiver after a
    timeout): the one that inserts second answers it as a duplicate, as one alarm at a time would; if alarms of its
    batch were to be collapsed into that item (whose id it never got), the whole batch is refused (503, nothing
    kept) and the gateway's resend then finds the alarm stored and collapses the rest into it."""
    eng = create_engine(pg_fresh_url)
    await migrate_receiver(eng)
    sessions = session_factory(eng)

    async def waiting_on_lock() -> bool:
        async with eng.connect() as conn:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return bool(await conn.scalar(text(query)))

    try:
        first = sessions()
        await first.begin()
        await queue.ingest(first, [intake_alarm("d1", "x1", 5, type_="assistance")])  # not committed yet
        async with sessions.begin() as s:  # no repeat depends on it: a duplicate, the rest stored
            other = asyncio.create_task(
                queue.ingest(s, [intake_alarm("d1", "x1", 5, type_="assistance"), intake_alarm("d2", "y1", 5)])
            )
            await eventually(waiting_on_lock, timeout=10)  # on the first receiver's uncommitted key
            assert not other.done()
            await first.commit()
            results, _ = await asyncio.wait_for(other, 10)
        assert [r.result for r in results] == ["duplicate", "created"]

        await first.begin()
        await queue.ingest(first, [intake_alarm("d1", "z1", 5, type_="fall")])
        s = sessions()
        await s.begin()
        batch = [intake_alarm("d1", "z1", 5, type_="fall"), intake_alarm("d1", "z2", 6, type_="fall")]
        other = asyncio.create_task(queue.ingest(s, batch))
        await eventually(waiting_on_lock, timeout=10)
        await first.commit()
        with pytest.raises(queue.IntakeRace) as refused:
            await asyncio.wait_for(other, 10)
        assert refused.value.status == 503
        await s.rollback()
        await s.close()
        await first.close()
        async with sessions.begin() as s:  # the gateway sends the batch again
            results, _ = await queue.ingest(s, batch)
        assert [r.result for r in results] == ["duplicate", "created"]
        async with sessions() as s:
            z1 = next(a for a in await queue.list_alarms(s) if a.alarm_id == "z1")
            assert (z1.repeats, z1.priority) == (1, 6)
            assert not any(a.alarm_id == "z2" for a in await queue.list_alarms(s))
    finally:
        await eng.dispose()


async def test_live_feed_messages_read_by_core_are_those_of_the_orm_object(engine: AsyncEngine) -> None:
    """The intake builds the live feed's messages from one Core statement (the item and its client by a join): the
    same dict and JSON as ``AlarmOut`` of the ORM object with its client, with and without a client or an address."""
    sessions = session_factory(engine)
    async with sessions.begin() as s:
        s.add_all([Client(ref="c1", name="Anna A", street="Storgatan 1", town="Visby"), Client(ref="c2", name="B")])
    async with sessions.begin() as s:
        _, changed = await queue.ingest(
            s,
            [
                IntakeAlarm(**vars(intake_alarm("d1", "m1", 5)) | {"details": {"client_ref": "c1", "text": "å"}}),
                IntakeAlarm(**vars(intake_alarm("d2", "m2", 7)) | {"details": {"client_ref": "c2"}}),
                intake_alarm("d3", "m3", 3, type_="assistance"),
                intake_alarm("d3", "m4", 9, type_="assistance"),  # a repeat: the item's count and priority
            ],
        )
        got = sorted(await alarm_messages(s, changed), key=lambda m: m[0]["id"])  # before the commit, as the intake
    async with sessions() as s:
        alarms = (await s.scalars(select(QueueAlarm).where(QueueAlarm.id.in_(changed)))).all()
        want = sorted((alarm_message(a) for a in alarms), key=lambda m: m[0]["id"])
    assert len(got) == 3 and got == want
    assert [(m[0]["client_name"], m[0]["client_address"], m[0]["repeats"]) for m in got] == [
        ("Anna A", "Storgatan 1, Visby", 0),
        ("B", "", 0),
        (None, None, 1),
    ]
    assert [json.loads(text) for _, text in got] == [data for data, _ in got]
