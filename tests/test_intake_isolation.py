"""The intake writer tells "this item is bad" from "the store is down", on SQLite and a real PostgreSQL: an item the
store refuses on its content is answered UNSTORABLE and kept as a dead letter while the rest of its batch is stored;
errors of a store that is down or busy are retried, never taken for poison."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from devices import AlarmMessage, DeviceType
from gateway import metrics
from gateway.db import migrate
from gateway.dead_letters import Bounds
from gateway.intake import IntakeItem, Outcome, is_transient
from gateway.intake_writer import IntakeWriter
from gateway.models import DeadLetter, OutboxRow, StoredAlarm
from gateway.port import Received
from gateway.registry import add_device
from testing.wait import eventually
from trygg.db import create_engine, session_factory


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    await migrate(eng)
    async with session_factory(eng).begin() as session:
        await add_device(session, "p1", DeviceType.PENDANT)
    try:
        yield eng
    finally:
        await eng.dispose()


def alarm(alarm_id: str) -> AlarmMessage:
    return AlarmMessage.model_validate_json(
        json.dumps({"alarm_id": alarm_id, "type": "fall", "ts": "2026-11-29T02:00:00Z"})
    )


async def test_an_item_the_store_refuses_stays_with_itself(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    writer = IntakeWriter(sessions, dead_letter_bounds=Bounds(keep=10, payload_max_bytes=64))
    writer.start()
    try:
        raw = Received("trygg/v1/devices/p1/alarm", b'{"alarm_id": "b1", "type": "fall"}' + b" " * 100)
        # a value the store cannot write (a bug in how an item is built, or a value the database refuses)
        bad = IntakeItem("p1", alarm("b1"), from_device=False, details={"x": object()}, received=raw)
        items = [IntakeItem("p1", alarm("g1")), bad, IntakeItem("p1", alarm("g2"))]
        futures = [writer.submit(item) for item in items]  # queued together: one batch
        outcomes = await asyncio.wait_for(asyncio.gather(*futures), 20)
        assert outcomes == [Outcome.STORED, Outcome.UNSTORABLE, Outcome.STORED]
        # and the writer goes on
        assert await asyncio.wait_for(writer.submit(IntakeItem("p1", alarm("g3"))), 10) is Outcome.STORED
    finally:
        await writer.stop()
    async with sessions() as session:
        stored = set((await session.scalars(select(StoredAlarm.alarm_id))).all())
        outbox = await session.scalar(select(func.count()).select_from(OutboxRow))
        [letter] = (await session.scalars(select(DeadLetter))).all()
    assert stored == {"g1", "g2", "g3"} and outbox == 3
    assert letter.code == "unstorable" and letter.device_id == "p1" and letter.kind == "alarm"
    assert letter.size == len(raw.payload) and letter.payload == raw.payload[:64]
    assert letter.error.startswith("StatementError at ") or letter.error.startswith("TypeError at "), letter.error


async def test_a_locked_store_is_waited_for(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/locked.db"
    eng = create_engine(url)

    def short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:  # fail fast while locked: retried, not poison
        dbapi_conn.cursor().execute("PRAGMA busy_timeout=100")

    event.listen(eng.sync_engine, "connect", short_busy_timeout)
    await migrate(eng)
    async with session_factory(eng).begin() as session:
        await add_device(session, "p1", DeviceType.PENDANT)
    writer = IntakeWriter(session_factory(eng))
    writer.start()
    lock = sqlite3.connect(tmp_path / "locked.db", timeout=0, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        errors = metrics.STORE_ERRORS._value.get()
        future = writer.submit(IntakeItem("p1", alarm("during")))

        async def retried() -> bool:  # it failed, and was tried again
            return bool(metrics.STORE_ERRORS._value.get() >= errors + 2)

        await eventually(retried, timeout=10)
        assert not future.done(), "answered while the store was locked"
        lock.execute("ROLLBACK")
        assert await asyncio.wait_for(future, 15) is Outcome.STORED
    finally:
        lock.close()
        await writer.stop()
        await eng.dispose()


def test_store_down_is_transient_and_bad_content_is_not() -> None:
    locked = sa_exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database is locked"))
    refused = sa_exc.IntegrityError("INSERT ...", {}, Exception("duplicate key"))
    data = sa_exc.DataError("INSERT ...", {}, Exception("invalid input syntax for type json"))
    assert is_transient(locked) and is_transient(ConnectionRefusedError()) and is_transient(TimeoutError())
    assert not is_transient(refused) and not is_transient(data)
    assert not is_transient(RecursionError()) and not is_transient(OverflowError()) and not is_transient(ValueError())
