"""The forwarder sends the rows the intake writer hands over without reading them back (gateway/forwarder.py).

What it sends from memory must be exactly what it would have read from the store (same items, same fair order, the
same outbox ids to mark), and the store stays the source of truth: a cancel is read from the store (so it is ordered
against its alarm by the store's ids) and so is everything after a start. Confirmed rows are marked delivered
even when no alarm comes after them. Real SQLite (and PostgreSQL), real Mosquitto, a real receiver."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from devices import AlarmMessage, AlarmType, DeviceType, parse_alarm
from gateway import forwarder as forwarder_module
from gateway.forwarder import _Pending, fair_order, pending_rows, to_wire
from gateway.intake import IntakeItem, NewRows, store_batch
from gateway.models import OutboxRow
from gateway.records import Received
from testing.broker import Broker
from testing.harness import RawDevice, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from trygg.db import engine_scope, session_factory

DEVICES = {"d1": DeviceType.PENDANT, "d2": DeviceType.PENDANT, "d3": DeviceType.SMOKE}


def _alarm(device_id: str, n: int, alarm_type: AlarmType, **extra: Any) -> IntakeItem:
    # a device clock in another zone: filed in UTC whether sent from memory or read back from the store
    ts = datetime(2026, 11, 30, 8, 0, tzinfo=timezone(timedelta(hours=1))) + timedelta(seconds=n)
    payload = json.dumps({"alarm_id": f"{device_id}-{n}", "type": alarm_type.value, "ts": ts.isoformat(), **extra})
    message = parse_alarm(device_id, payload.encode(), 4096)
    assert isinstance(message, AlarmMessage), message
    received = Received(f"trygg/devices/{device_id}/alarm", payload.encode(), protocol="mqtt")
    return IntakeItem(device_id, message, is_test=(n == 2), received=received)


async def test_handed_over_rows_are_what_the_store_reads_back(db_url: str, tmp_path: Path) -> None:
    """On SQLite and PostgreSQL: the ids come from an INSERT ... RETURNING in no particular order."""
    settings = make_settings(tmp_path, "mqtt://127.0.0.1:1", gateway_database_url=db_url)
    await prepare_stores(settings, DEVICES)
    batches = [
        [
            _alarm("d1", 1, AlarmType.ASSISTANCE, battery=17, note={"x": [1, 2]}),
            _alarm("d1", 2, AlarmType.FALL),
            _alarm("d2", 1, AlarmType.ASSISTANCE, priority=9),
            _alarm("d1", 1, AlarmType.ASSISTANCE),  # a resend: no second row
        ],
        [_alarm("d3", 1, AlarmType.SMOKE), _alarm("d1", 3, AlarmType.ASSISTANCE), _alarm("d2", 2, AlarmType.FALL)],
    ]
    handed: list[_Pending] = []
    async with engine_scope(settings.gateway_database_url) as engine:
        sessions = session_factory(engine)
        for batch in batches:
            new_rows = NewRows()
            async with sessions.begin() as session:
                await store_batch(session, batch, new_rows=new_rows)
            assert new_rows.others == 0
            handed += [
                _Pending(i, "alarm", row["device_id"], row["alarm_id"], row["priority"], row)
                for i, row in new_rows.alarms
            ]
        async with sessions() as session:
            stored = await pending_rows(session, 100)
    assert len(handed) == len(stored) == 6
    by_id = {row.id: row for row in handed}
    assert set(by_id) == {row.id for row, _ in stored}, "the handed-over ids are the outbox rows written"
    for row, alarm in stored:
        from_memory, from_store = by_id[row.id].wire(), to_wire(row, alarm)
        assert from_memory == from_store
        assert from_memory.model_dump_json() == from_store.model_dump_json()
    assert [p.id for p in fair_order(handed, 100)] == [row.id for row, _ in stored], "the store's fair order"
    assert [p.id for p in fair_order(handed, 4)] == [row.id for row, _ in stored][:4]


async def test_alarms_go_from_memory_and_a_cancel_from_the_store(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forwarder_module, "RESYNC_S", 600.0)  # no periodic read during the test
    settings = make_settings(tmp_path, broker.url)
    await prepare_stores(settings, DEVICES)
    reads = 0

    def count_reads(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal reads
        if "row_number()" in statement.lower():
            reads += 1

    delivered: list[tuple[str, str, str]] = []
    async with running_receiver(settings), running_gateway(settings) as gw:
        # the forwarder's reads: on SQLite through an engine of its own (gateway/core.py), else the gateway's
        event.listen(gw.core.forward_engine.sync_engine, "before_cursor_execute", count_reads)
        gw.port.on_delivered(lambda kind, device_id, alarm_id: delivered.append((kind, device_id, alarm_id)))
        await eventually(lambda: gw.forwarder.receiver_reachable, 10)  # its first round read the store
        reads_at_start = reads
        async with RawDevice(settings, "d1") as d1, RawDevice(settings, "d2") as d2:
            sent = []
            for n in range(6):
                device = (d1, d2)[n % 2]
                alarm_id = f"a{n}"
                ts = datetime.now(UTC).isoformat()
                device.publish("alarm", {"alarm_id": alarm_id, "type": "assistance", "ts": ts})
                assert (await device.next_ack(alarm_id=alarm_id))["status"] == "stored"
                sent.append(("alarm", device.device_id, alarm_id))
            await eventually(lambda: len(delivered) >= len(sent), 10)
            assert sorted(delivered) == sorted(sent)
            assert reads == reads_at_start, "alarms handed over by the writer were read back from the store"

            d1.publish("alarm/cancel", {"alarm_id": "a0", "ts": datetime.now(UTC).isoformat()})
            assert (await d1.next_ack(alarm_id="a0", status="cancelled"))["subject"] == "cancel"
            await eventually(lambda: ("cancel", "d1", "a0") in delivered, 10)
            assert reads > reads_at_start, "a cancel is forwarded as read from the store"
            assert delivered.index(("alarm", "d1", "a0")) < delivered.index(("cancel", "d1", "a0"))

            # after the store read, alarms go from memory again
            reads_after_cancel = reads
            d2.publish("alarm", {"alarm_id": "late", "type": "fall", "ts": datetime.now(UTC).isoformat()})
            assert (await d2.next_ack(alarm_id="late"))["status"] == "stored"
            await eventually(lambda: ("alarm", "d2", "late") in delivered, 10)
            assert reads == reads_after_cancel

            # with no alarm coming after it, the last confirmation is still marked in the store (MARK_AFTER_S),
            # and the mark is what tells the count of rows still owed
            async def undelivered() -> int:
                async with gw.sessions() as session:
                    return int(
                        await session.scalar(
                            select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))
                        )
                        or 0
                    )

            assert await eventually(lambda: _is_zero(undelivered()), 5)
            async with gw.sessions() as session:
                total = await session.scalar(select(func.count()).select_from(OutboxRow))
            assert total == len(sent) + 2  # the six alarms, the cancel, the late alarm


async def _is_zero(count: Awaitable[int]) -> bool:
    return await count == 0
