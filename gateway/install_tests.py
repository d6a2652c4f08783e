"""Installation tests: the gateway's own window in which a device's next alarm proves the whole chain.

A technician opens a window for a device (``POST /api/v1/devices/{id}/install-test``). The device's next alarm
inside it is filed as a test (``is_test``): stored here, confirmed by the receiver, resolved there without reaching
the patrol, and answered ``acknowledged`` to the device. The test passes when the receiver confirms that alarm,
and fails when the window closes first (saying where the chain stopped: ``detail`` in English, ``detail_code`` for
the console). This window is the only thing that makes an
alarm a test: nothing a device sends can (docs/contract.md). Part of the core because it decides how an alarm is
filed, for every protocol alike; the fleet API opens windows through the port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.models import InstallTest
from trygg.db import utcnow

log = structlog.get_logger(__name__)
_OPEN = ("waiting", "stored")


class InstallTests:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._waiting: dict[str, int] = {}  # device -> open test whose alarm has not come yet
        self._stored: dict[tuple[str, str], int] = {}  # (device, alarm) -> test, stored and not yet confirmed
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        async with self._sessions() as session:
            waiting = (await session.scalars(select(InstallTest).where(InstallTest.state == "waiting"))).all()
        self._waiting = {t.device_id: t.id for t in waiting}

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def is_open(self, device_id: str) -> bool:
        """Is the next alarm of this device an installation test?"""
        return device_id in self._waiting

    async def start(self, device_id: str, actor: str, window_s: float) -> InstallTest:
        async with self._sessions.begin() as session:
            # one open test per device: a new one replaces the old
            await session.execute(
                update(InstallTest)
                .where(InstallTest.device_id == device_id, InstallTest.state.in_(_OPEN))
                .values(
                    state="failed", finished_at=utcnow(), detail="replaced by a new test", detail_code="test.replaced"
                )
            )
            test = InstallTest(device_id=device_id, started_by=actor, deadline=utcnow() + timedelta(seconds=window_s))
            session.add(test)
            await session.flush()
        self._waiting[device_id] = test.id
        log.info("installation test started", device_id=device_id, test=test.id, by=actor, window_s=window_s)
        return test

    # --- listeners on the durable path (registered by the core) ----------------------------------------------
    def alarm_stored(self, device_id: str, alarm_id: str, is_test: bool) -> None:
        if not is_test:
            return
        test_id = self._waiting.pop(device_id, None)
        if test_id is None:
            return
        self._stored[(device_id, alarm_id)] = test_id
        self._spawn(self._update(test_id, state="stored", alarm_id=alarm_id, stored_at=utcnow()))

    def alarm_delivered(self, kind: str, device_id: str, alarm_id: str) -> None:
        test_id = self._stored.pop((device_id, alarm_id), None) if kind == "alarm" else None
        if test_id is not None:
            self._spawn(self._passed(test_id))

    # --- the window closing ----------------------------------------------------------------------------------
    async def fail_overdue(self) -> None:
        """Fail the tests whose window closed, saying where the chain stopped (one round; the core repeats it)."""
        if not self._waiting and not self._stored:
            return
        now = utcnow()
        async with self._sessions.begin() as session:
            overdue = (
                await session.scalars(
                    select(InstallTest).where(InstallTest.state.in_(_OPEN), InstallTest.deadline < now)
                )
            ).all()
            for test in overdue:
                test.finished_at = now
                if test.state == "waiting":
                    test.detail = "no alarm from the device within the test window (check pairing, radio, broker)"
                    test.detail_code = "test.no_alarm"
                else:
                    test.detail = "stored at the gateway but not confirmed by the alarm receiver in time"
                    test.detail_code = "test.not_confirmed"
                test.state = "failed"
                self._waiting.pop(test.device_id, None)
                if test.alarm_id is not None:
                    self._stored.pop((test.device_id, test.alarm_id), None)
                log.warning("installation test failed", test=test.id, device_id=test.device_id, why=test.detail)

    async def _passed(self, test_id: int) -> None:
        async with self._sessions.begin() as session:
            test = await session.get(InstallTest, test_id)
            if test is None or test.state not in _OPEN:
                return
            now = utcnow()
            test.state, test.finished_at = "passed", now
            test.end_to_end_ms = (now - test.stored_at).total_seconds() * 1000 if test.stored_at else None
            test.detail = "alarm stored by the gateway and confirmed by the alarm receiver"
            test.detail_code = "test.passed"
        log.info("installation test passed", test=test_id)

    async def _update(self, test_id: int, **values: Any) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(InstallTest).where(InstallTest.id == test_id).values(**values))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as exc:
            log.error("installation test bookkeeping failed", error_type=type(exc).__name__, exc_info=exc)
