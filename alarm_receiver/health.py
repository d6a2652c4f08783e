"""The receiver's health: its store commits (``/health`` answers 503 with reason codes when it does not).

The intake records each commit's fate (:meth:`StoreHealth.committed` / :meth:`StoreHealth.failed`); when nothing was
committed for ``health_store_probe_s``, health writes the probe row itself, within ``health_store_timeout_s``.
Codes: ``health.store_failing`` (the last commit failed), ``health.store_unresponsive`` (the probe did not commit in
time). Each reason is also the gauge ``trygg_receiver_health_failing{code}`` (config/prometheus/trygg-alerts.yml).
"""

from __future__ import annotations

import asyncio
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alarm_receiver import metrics
from alarm_receiver.models import StoreProbe
from trygg.db import dialect_insert, utcnow

log = structlog.get_logger(__name__)


class StoreHealth:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, probe_after_s: float, timeout_s: float) -> None:
        self._sessions = sessions
        self._probe_after = probe_after_s
        self._timeout = timeout_s
        self.failing_since: float | None = None
        self.last_ok = time.monotonic()
        # One probe at a time, never cancelled half-way (a transaction cut off by a timeout could leave its pooled
        # connection in a bad state): health waits for it up to the timeout, the probe itself runs on.
        self._probing: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
            await asyncio.gather(self._probing, return_exceptions=True)

    def committed(self) -> None:
        self.failing_since = None
        self.last_ok = time.monotonic()

    def failed(self) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    async def _probe(self) -> None:
        try:
            await self._write_probe()
        except Exception as exc:
            self.failed()
            log.error("store probe failed", error_type=type(exc).__name__, error=str(exc)[:200])
            return
        self.committed()

    async def _write_probe(self) -> None:
        async with self._sessions.begin() as session:
            now = utcnow()
            insert = dialect_insert(session)
            await session.execute(
                insert(StoreProbe)
                .values(id=1, probed_at=now)
                .on_conflict_do_update(index_elements=["id"], set_={"probed_at": now})
            )

    async def problems(self) -> list[dict[str, object]]:
        now = time.monotonic()
        found: list[dict[str, object]] = []
        if self.failing_since is not None:
            found.append({"code": "health.store_failing", "params": {"for_s": round(now - self.failing_since, 1)}})
        elif now - self.last_ok > self._probe_after:
            if self._probing is None or self._probing.done():
                self._probing = asyncio.create_task(self._probe(), name="receiver-store-probe")
            done, _ = await asyncio.wait({self._probing}, timeout=self._timeout)
            if not done:
                found.append({"code": "health.store_unresponsive", "params": {"timeout_s": self._timeout}})
            elif self.failing_since is not None:
                found.append({"code": "health.store_failing", "params": {"for_s": 0.0}})
        codes = {p["code"] for p in found}
        for code in metrics.HEALTH_CODES:
            metrics.HEALTH_FAILING.labels(code).set(1 if code in codes else 0)
        return found
