"""Leader election (trygg/leader.py) against the real PostgreSQL: one leader, takeover after a kill or a hang."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from testing.wait import eventually
from trygg.db import create_engine
from trygg.leader import Leadership, lock_key

ROLE = "trygg.test.leader"


@pytest_asyncio.fixture
async def engines(pg_fresh_url: str) -> AsyncIterator[list[AsyncEngine]]:
    made = [create_engine(pg_fresh_url) for _ in range(3)]
    try:
        yield made
    finally:
        for engine in made:
            await engine.dispose()


async def test_sqlite_is_always_leader(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    lead = Leadership(engine, ROLE)
    await lead.start()
    assert lead.single and lead.is_leader and lead.terms == 1
    await lead.stop()
    await engine.dispose()


async def test_exactly_one_leader_and_takeover_after_its_session_dies(engines: list[AsyncEngine]) -> None:
    leads = [Leadership(e, ROLE, instance=f"i{n}", check_s=0.2, ttl_s=2.0) for n, e in enumerate(engines)]
    for lead in leads:
        await lead.start()
    try:
        first = await eventually(lambda: [x for x in leads if x.is_leader], timeout=20)
        # a few more rounds: still exactly one
        for _ in range(5):
            await eventually(lambda: sum(x.is_leader for x in leads) == 1, timeout=20)
        assert len(first) == 1
        old = first[0]
        # The leader's session dies (as when its process is killed): the server frees the lock.
        async with engines[0].connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": f"{ROLE}:{old.instance}"},
            )
        new = await eventually(lambda: [x for x in leads if x.is_leader and x is not old], timeout=20)
        assert len(new) == 1
        await eventually(lambda: not old.is_leader, timeout=20)
        await eventually(lambda: sum(x.is_leader for x in leads) == 1, timeout=20)
    finally:
        for lead in leads:
            await lead.stop()


async def test_clean_stop_hands_over(engines: list[AsyncEngine]) -> None:
    a = Leadership(engines[0], ROLE, instance="a", check_s=0.2, ttl_s=2.0)
    b = Leadership(engines[1], ROLE, instance="b", check_s=0.2, ttl_s=2.0)
    await a.start()
    await eventually(lambda: a.is_leader, timeout=20)
    await b.start()
    try:
        await a.stop()
        assert not a.is_leader
        await eventually(lambda: b.is_leader, timeout=20)
    finally:
        await b.stop()


_CHILD = """
import asyncio, sys
from trygg.db import create_engine
from trygg.leader import Leadership

async def main():
    lead = Leadership(create_engine(sys.argv[1]), sys.argv[2], instance="child", check_s=0.2, ttl_s=2.0)
    await lead.start()
    while not lead.is_leader:
        await asyncio.sleep(0.05)
    print("leader", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
async def test_takeover_after_the_leader_process_is_killed_or_hangs(
    fault: str, pg_fresh_url: str, engines: list[AsyncEngine]
) -> None:
    """A real leader process, SIGKILLed (socket closed: lock freed at once) or SIGSTOPped (its session ends after
    ttl_s by idle_session_timeout): the follower takes over within ttl_s + check_s (+ slack for a loaded machine)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CHILD, pg_fresh_url, ROLE, stdout=asyncio.subprocess.PIPE, cwd=os.getcwd()
    )
    follower = Leadership(engines[0], ROLE, instance="follower", check_s=0.2, ttl_s=2.0)
    try:
        assert child.stdout is not None
        stdout = child.stdout

        async def leader_line() -> str:
            while (line := await stdout.readline()) and line.strip() != b"leader":  # the child's log lines first
                pass
            return line.decode().strip()

        assert await asyncio.wait_for(leader_line(), 60) == "leader"
        await follower.start()
        await eventually(lambda: follower.rounds > 0, timeout=20)  # tried, lost
        assert not follower.is_leader
        t0 = time.monotonic()
        child.send_signal(getattr(signal, fault))
        await eventually(lambda: follower.is_leader, timeout=30)
        took = time.monotonic() - t0
        bound = follower.valid_s + 0.2 + (0 if fault == "SIGKILL" else 2.0)  # V + check_s (+ ttl_s)
        print(f"takeover after {fault}: {took:.2f} s (bound {bound} s)")
        assert took >= follower.valid_s  # a new leader waits V: an old one that may still live has stopped
        assert took < bound + 10  # a generous slack for a loaded machine
        if fault == "SIGSTOP":
            assert took >= 2.0 - 0.3  # not before the hung leader's session could have ended
    finally:
        await follower.stop()
        with contextlib.suppress(ProcessLookupError):  # SIGKILLed above: already gone
            child.send_signal(signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)


def test_lock_key_is_stable_and_fits_a_bigint() -> None:
    key = lock_key("trygg.gateway.leader")
    assert key == lock_key("trygg.gateway.leader") != lock_key("trygg.receiver.leader")
    assert 0 < key < 2**63
