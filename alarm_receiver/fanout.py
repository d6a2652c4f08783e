"""Live feed across receivers: a change made through one receiver reaches the consoles of every receiver.

Several receivers behind HAProxy share one PostgreSQL database; each browser's live feed (SSE) is held by one of
them. Each receiver tells the others what changed with PostgreSQL's ``NOTIFY`` on the channel ``trygg_live``
(nothing home-made: the database every receiver already uses is the channel), and listens with ``LISTEN`` on a
dedicated connection (asyncpg). A notification names what changed, not its content (alarm ids, or a session to
end): the receiving side reads the alarms from the store and publishes them to its own subscribers, so a payload
never nears PostgreSQL's 8,000-byte limit and personal text never travels in it. Each receiver ignores its own
notifications (it published locally already).

A notification sent while a receiver's listening connection is down is not delivered to it later; the listener
reconnects with a backoff, and a console that missed an update gets it with the alarm's next change or its next
reload (the console reloads the queue whenever its live feed reconnects). On SQLite (one receiver) this is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from trygg.loops import Backoff

log = structlog.get_logger(__name__)

CHANNEL = "trygg_live"
KEEPALIVE_S = 5.0
IDS_PER_NOTICE = 500  # 500 ids of up to 10 digits: well under 8,000 bytes


class LiveFanout:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        on_alarms: Callable[[list[int]], Awaitable[None]],
        on_end_session: Callable[[str, str], object],
    ) -> None:
        self.enabled = engine.dialect.name == "postgresql"
        self._engine = engine
        self._on_alarms = on_alarms
        self._on_end_session = on_end_session
        self.origin = os.urandom(8).hex()  # this process: its own notifications are skipped
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.listening = asyncio.Event()
        self.received = 0

    # --- sending --------------------------------------------------------------------------------------------
    def alarms_changed(self, ids: Sequence[int]) -> None:
        if not self.enabled or not ids:
            return
        ids = list(ids)
        for start in range(0, len(ids), IDS_PER_NOTICE):
            self._send({"kind": "alarms", "ids": ids[start : start + IDS_PER_NOTICE]})

    def session_ended(self, session_key: str, code: str) -> None:
        if self.enabled:
            self._send({"kind": "end_session", "key": session_key, "code": code})

    def _send(self, body: dict[str, Any]) -> None:
        self._outbox.put_nowait(json.dumps({"origin": self.origin, **body}, separators=(",", ":")))

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="live-fanout")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._drop()

    async def _run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                driver = await self._listen()
                backoff.reset()
                while True:  # one connection sends and listens: asyncpg runs one query at a time, in order
                    try:
                        payload = await asyncio.wait_for(self._outbox.get(), timeout=KEEPALIVE_S)
                    except TimeoutError:
                        await driver.execute("SELECT 1")  # a dead connection is found and replaced
                        continue
                    try:
                        await driver.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                    except BaseException:
                        self._outbox.put_nowait(payload)  # sent again once connected (order within one kept)
                        raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                log.warning("live fan-out connection lost; reconnecting", error_type=type(exc).__name__)
                await self._drop()
                await asyncio.sleep(backoff.next())

    async def _listen(self) -> Any:
        conn = await self._engine.connect()
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        self._conn = conn
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection  # the asyncpg connection
        assert driver is not None
        await driver.add_listener(CHANNEL, self._notified)
        self.listening.set()
        return driver

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    # --- receiving ------------------------------------------------------------------------------------------
    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            log.warning("live fan-out: unreadable notification", size=len(payload))
            return
        if body.get("origin") == self.origin:
            return
        self.received += 1
        if body.get("kind") == "end_session":
            self._on_end_session(str(body.get("key")), str(body.get("code")))
        elif body.get("kind") == "alarms":
            ids = [int(i) for i in body.get("ids", []) if isinstance(i, int)]
            task = asyncio.get_running_loop().create_task(self._publish(ids))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _publish(self, ids: list[int]) -> None:
        try:
            await self._on_alarms(ids)
        except Exception as exc:
            log.error("live fan-out: alarms not published here", error_type=type(exc).__name__, exc_info=exc)
