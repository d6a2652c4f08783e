"""The supervision log: append, verify, a tampered row is named, client entries; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, text

from trygg import audit
from trygg.audit.migrations import AUDIT_CHAIN
from trygg.db import engine_scope, session_factory, utcnow
from trygg.schema import migrate


async def _exercise(url: str) -> None:
    async with engine_scope(url) as engine:
        await migrate(engine, AUDIT_CHAIN)
        sessions = session_factory(engine)
        async with sessions.begin() as s:
            assert await audit.verify(s) == audit.VerifyResult(ok=True, entries=0)
        t0 = utcnow()
        for i in range(5):
            async with sessions.begin() as s:
                await audit.append(
                    s,
                    actor="op1",
                    action="checkin.look_started",
                    client_ref="client-a" if i % 2 == 0 else "client-b",
                    subject=f"checkin-{i}",
                    details={"i": i, "at": t0, "max_s": 30.0},
                )
        async with sessions.begin() as s:
            result = await audit.verify(s)
            assert result.ok and result.entries == 5
            entries = await audit.client_entries(s, "client-a")
            assert [e.subject for e in entries] == ["checkin-0", "checkin-2", "checkin-4"]
            assert await audit.client_entries(s, "client-a", since=utcnow() + timedelta(seconds=5)) == []
            assert entries[1].prev_hash == (await s.get(audit.Entry, 2)).hash  # type: ignore[union-attr]

        # Concurrent appends in one process never fork the chain.
        async def one(i: int) -> None:
            async with sessions.begin() as s:
                await audit.append(s, actor="gw", action="checkin.due", subject=f"c-{i}")

        await asyncio.gather(*(one(i) for i in range(10)))
        async with sessions.begin() as s:
            assert (await audit.verify(s)).entries == 15

        # Many appends in one transaction read the chain's end once (issue 8, CPU); a savepoint rolled back and an
        # entry added by someone else in between still leave one unbroken chain.
        reads: list[str] = []

        def count_reads(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "supervision_log" in statement:
                reads.append(statement)

        event.listen(engine.sync_engine, "before_cursor_execute", count_reads)
        async with sessions.begin() as s:
            for i in range(50):
                await audit.append(s, actor="gateway", action="alarm.received", subject=f"alarm:d/{i}")
                if i % 10 == 0:
                    await s.flush()  # as the other statements of an intake batch do between its appends
        event.remove(engine.sync_engine, "before_cursor_execute", count_reads)
        assert len(reads) == 1
        async with sessions.begin() as s:
            await audit.append(s, actor="gw", action="x", subject="kept-1")
            savepoint = await s.begin_nested()
            await audit.append(s, actor="gw", action="x", subject="rolled-back")
            await savepoint.rollback()
            await audit.append(s, actor="gw", action="x", subject="kept-2")
            last = await s.get(audit.Entry, 15 + 50 + 2)
            assert last is not None and last.subject == "kept-2"
            s.add(audit.Entry(id=0, at=utcnow(), actor="x", action="x", details={}, prev_hash="x", hash="x"))
            s.expunge_all()  # added and dropped again: the next append reads the chain's end
            await audit.append(s, actor="gw", action="x", subject="kept-3")
        async with sessions.begin() as s:
            assert (await audit.verify(s)) == audit.VerifyResult(ok=True, entries=15 + 50 + 3)

        # Tampering with entry 3 directly in SQL: verify names it.
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE supervision_log SET actor = 'someone-else' WHERE id = 3"))
        async with sessions.begin() as s:
            bad = await audit.verify(s)
        assert not bad.ok and bad.first_bad_id == 3 and "altered" in (bad.reason or "")

        # Restored, and a deleted entry breaks the chain at the one after it.
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE supervision_log SET actor = 'op1' WHERE id = 3"))
        async with sessions.begin() as s:
            assert (await audit.verify(s)).ok
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM supervision_log WHERE id = 7"))
        async with sessions.begin() as s:
            gone = await audit.verify(s)
        assert not gone.ok and gone.first_bad_id == 8


async def test_audit_on_sqlite(tmp_path: Path) -> None:
    await _exercise(f"sqlite+aiosqlite:///{tmp_path}/audit.db")


async def test_audit_on_postgresql(pg_fresh_url: str) -> None:
    await _exercise(pg_fresh_url)


def test_hash_covers_every_field() -> None:
    base = dict(
        id=1, at=utcnow(), actor="a", action="x", client_ref="c", subject="s", details={"k": 1}, prev_hash=audit.GENESIS
    )
    h = audit.entry_hash(**base)  # type: ignore[arg-type]
    for key, other in (("actor", "b"), ("details", {"k": 2}), ("prev_hash", "1" * 64), ("id", 2), ("subject", None)):
        assert audit.entry_hash(**{**base, key: other}) != h, key  # type: ignore[arg-type]
