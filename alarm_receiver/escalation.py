"""Escalates alarms no operator has acknowledged: level 1 at 60 s, level 2 at 3 min (both settings)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alarm_receiver import metrics, queue
from alarm_receiver.models import QueueAlarm
from trygg.db import utcnow
from trygg.loops import run_forever

log = structlog.get_logger(__name__)


class Escalator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        first_after_s: float,
        second_after_s: float,
        on_change: Callable[[QueueAlarm], None],
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sessions = sessions
        self._first = first_after_s
        self._second = second_after_s
        self._on_change = on_change
        self._is_leader = is_leader  # several receivers: one escalates (trygg/leader.py)
        # Check often enough that an escalation is never late by more than a small part of its limit.
        self._period = max(0.05, min(1.0, first_after_s / 10))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            run_forever("escalation round", self._round, every_s=self._period, log=log), name="escalator"
        )

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self) -> list[QueueAlarm]:
        async with self._sessions.begin() as session:
            changed = await queue.escalate_due(session, utcnow(), self._first, self._second)
        for alarm in changed:
            metrics.ESCALATIONS.labels(str(alarm.escalation_level)).inc()
            log.warning("alarm escalated", alarm=alarm.id, device_id=alarm.device_id, level=alarm.escalation_level)
            self._on_change(alarm)
        return changed

    async def _round(self) -> None:
        if self._is_leader():
            await self.run_once()
