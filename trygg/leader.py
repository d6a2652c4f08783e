"""Leader election through PostgreSQL: exactly one instance of a service runs its time-driven work.

Several gateways (or receivers) share one PostgreSQL database; heartbeat deadlines, area outages, check-in
scheduling, escalation and notices to devices must each be done by exactly one of them. Each instance holds a
dedicated connection (autocommit, outside the pool's rotation) and tries ``pg_try_advisory_lock(key)`` on it every
``check_s``; the one that gets the lock is the leader until its session ends. Nothing home-made: the lock is
PostgreSQL's, and so is the detection of a dead holder:

- **killed** (SIGKILL, crash, host gone with its TCP stack): the kernel closes the socket, the server ends the
  session and frees the lock at once; a follower gets it on its next try;
- **hung or cut off** (SIGSTOP, a partition): the session is set ``idle_session_timeout = ttl_s``, so the
  server ends it ``ttl_s`` after its last query, and a follower gets the lock then.

**Never two leaders.** A leader confirms its session every ``check_s`` (a round that takes longer than
``2 * check_s`` fails) and counts itself leader only while its last confirmation, timed from before the query was
sent, is younger than ``V = 3 * check_s`` *by its own clock*. A session can end while its holder lives (the
server restarted, ``pg_terminate_backend``, a reset connection): the holder notices only at its next round. So a
new holder waits ``V`` after it got the lock before it acts: by then every earlier leader's last confirmation is
older than ``V`` (the lock was freed after it), and that leader has stopped. Takeover therefore takes at most
``check_s + V`` (4 s with the default 1 s) after a kill, and ``ttl_s + check_s + V`` after a hang.

SQLite (the single-machine default) has no other instance to elect: :attr:`Leadership.single` and always leader.
Leader-only loops ask :attr:`Leadership.is_leader` at each step and keep track of their own transitions
(a step that finds itself newly leader reloads what the previous leader left in the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import Callable

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trygg.loops import Backoff

log = structlog.get_logger(__name__)


def lock_key(role: str) -> int:
    """A stable 63-bit advisory-lock key for a role (``"trygg.gateway.leader"``)."""
    return zlib.crc32(role.encode()) | (0x7472_7967 << 32)  # "tryg" in the high half: apart from other locks


class Leadership:
    def __init__(
        self,
        engine: AsyncEngine,
        role: str,
        *,
        instance: str = "",
        check_s: float = 1.0,
        ttl_s: float = 5.0,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 2 * check_s:
            raise ValueError("ttl_s must be more than twice check_s: a live leader confirms several times per ttl")
        self.role = role
        self.instance = instance
        self.single = engine.dialect.name != "postgresql"
        self._engine = engine
        self._key = lock_key(role)
        self._check_s = check_s
        self._ttl_s = ttl_s
        self.valid_s = 3 * check_s  # V above: how long a confirmation counts, and how long a new holder waits
        self._mono = mono
        self._conn: AsyncConnection | None = None
        self._held = False
        self._confirmed: float = float("-inf")  # monotonic time before the last query that proved the lock ours
        self._acquired: float = float("inf")  # monotonic time after the query that got the lock
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self.changed = asyncio.Event()  # set on every gain or loss (tests and benchmarks wait on it)
        self.rounds = 0  # election rounds done (tried or confirmed)
        self.terms = 0  # how many times this instance became leader
        self.elected_at: float | None = None  # monotonic time of the last gain (active valid_s later)

    # --- reading --------------------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        if self.single:
            return True
        now = self._mono()
        return self._held and now - self._confirmed < self.valid_s and now - self._acquired >= self.valid_s

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """``listener(True)`` when this instance becomes leader, ``listener(False)`` when it stops being one."""
        self._listeners.append(listener)

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.single:
            self._acquired = self._mono()
            self._set(True)
            return
        self._task = asyncio.create_task(self._run(), name=f"leadership-{self.role}")

    async def stop(self) -> None:
        """Give the lock back at once (a clean stop hands over without waiting for ``check_s``)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._conn is not None:
            # Bounded: a round cancelled mid-query can leave the session busy; then the server frees the lock
            # when the dropped connection closes.
            with contextlib.suppress(Exception):
                if self._held:
                    await asyncio.wait_for(
                        self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key}), timeout=2.0
                    )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drop(), timeout=5.0)
            self._conn = None
        self._set(False)

    # --- the loop -------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = Backoff(min(0.5, self._check_s), self._check_s)
        while True:
            try:
                if self._conn is None:
                    await asyncio.wait_for(self._connect(), timeout=max(10.0, self._ttl_s))
                await asyncio.wait_for(self._round(), timeout=self._check_s * 2)
                backoff.reset()
                await asyncio.sleep(self._check_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # the session is gone (or unusable): so is the lock, if we held it
                log.warning("leader election: database session lost", role=self.role, error_type=type(exc).__name__)
                await self._drop()
                self._set(False)
                await asyncio.sleep(backoff.next())
            if self._held and self._mono() - self._confirmed >= self.valid_s:  # too late: step down by our clock
                log.warning("leader: lock not confirmed within ttl; stepping down", role=self.role)
                await self._drop()
                self._set(False)

    async def _connect(self) -> None:
        if self._conn is None:
            conn = await self._engine.connect()
            try:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                ttl_ms = int(self._ttl_s * 1000)
                await conn.execute(text(f"SET idle_session_timeout = {ttl_ms}"))
                await conn.execute(
                    text("SELECT set_config('application_name', :name, false)"),
                    {"name": f"{self.role}:{self.instance}"[:63]},
                )
            except BaseException:
                await conn.close()
                raise
            self._conn = conn

    async def _round(self) -> None:
        assert self._conn is not None
        before = self._mono()
        if self._held:
            await self._conn.execute(text("SELECT 1"))
            self._confirmed = before
            self.rounds += 1
            return
        got = (await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})).scalar()
        self.rounds += 1
        if got:
            self._confirmed = before
            self._acquired = self._mono()
            self._set(True)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # never back into the pool: a session that may hold the lock
            with contextlib.suppress(Exception):
                await conn.close()

    def _set(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        if held:
            self.terms += 1
            self.elected_at = self._acquired
        log.info("leadership " + ("gained" if held else "lost"), role=self.role, instance=self.instance)
        self.changed.set()
        for listener in self._listeners:
            try:
                listener(held)
            except Exception as exc:
                log.error("leadership listener failed", role=self.role, exc_info=exc)
