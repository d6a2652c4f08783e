"""Heartbeats heard by any gateway count: every instance shares what it heard, the leader reads it.

With several gateways on one broker's shared subscription, each heartbeat reaches one of them; only the leader
(``trygg.leader``) judges deadlines. Every instance keeps the newest heartbeat per device in memory (inline, no I/O
per heartbeat: they come by the ten thousand a second) and writes them every ``heartbeat_share_flush_s`` to
``heartbeats_seen``, one upsert per device per flush however many heartbeats came. The leader reads the rows
others wrote since its last read (by the database's clock, ``written_at``, with a margin for transactions that
committed late) on each supervision tick and counts each as heard when that instance heard it (``seen_at``). A
heartbeat thus reaches the leader's deadline check at most a flush period plus a tick late, far inside
``heartbeat_grace_s`` (30 s). The leader shares its own too (it counts them at once, and skips its own rows when
reading): should it die, the next leader knows every heartbeat it heard up to its last share, and a leader whose
database session ended while it lives shares what it hears until it notices (docs/architecture.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devices import Heartbeat
from gateway.fleet.models import HeartbeatSeen
from trygg.db import dialect_insert

log = structlog.get_logger(__name__)

# Rows written up to this long before the last read are read again: a transaction that began (and so stamped
# written_at) before the read but committed after it is not missed.
READ_MARGIN_S = 5.0


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _upsert(insert: Any) -> Any:
    """``INSERT ... ON CONFLICT (device_id) DO UPDATE`` (newest heard wins) for executemany."""
    table = HeartbeatSeen.__table__
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.device_id],
        set_={
            "seen_at": stmt.excluded.seen_at,
            "gateway": stmt.excluded.gateway,
            "heartbeat": stmt.excluded.heartbeat,
            "written_at": func.now(),
        },
        where=table.c.seen_at < stmt.excluded.seen_at,
    )


class HeartbeatShare:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], instance: str) -> None:
        self._sessions = sessions
        self._instance = instance or "gateway"
        # device -> newest heard (wall-clock seconds: cheaper than a datetime on the per-heartbeat path), not written
        self._heard: dict[str, tuple[float, Heartbeat]] = {}
        self._read_since: datetime | None = None  # database time of the last read
        self._known: dict[str, datetime] = {}  # device -> seen_at of the row the leader read last
        self.written = 0
        self.read = 0

    def record(self, device_id: str, heartbeat: Heartbeat) -> None:
        """Inline on the heartbeat path of a follower."""
        self._heard[device_id] = (time.time(), heartbeat)

    def heard(self) -> dict[str, tuple[datetime, Heartbeat]]:
        """What this instance heard and has not written yet (a follower that just became leader applies it
        itself; it is still written with the next flush)."""
        return {device_id: (_utc(t), hb) for device_id, (t, hb) in self._heard.items()}

    async def flush(self) -> int:
        """Write what was heard since the last flush: one row per device, newest wins."""
        heard, self._heard = self._heard, {}
        if not heard:
            return 0
        rows = [
            {
                "device_id": device_id,
                "seen_at": _utc(seen_at),
                "gateway": self._instance,
                "heartbeat": hb.model_dump(mode="json", exclude_none=True),
            }
            # in key order: two instances upserting the same devices at once lock the rows in the same order
            # (waits, never a deadlock)
            for device_id, (seen_at, hb) in sorted(heard.items())
        ]
        try:
            async with self._sessions.begin() as session:
                # One statement for the whole batch, run as an executemany: its compiled form is cached. (A
                # multi-row ``.values(rows)`` is compiled again on every flush: 0.14 s of CPU per 2,000 devices,
                # which stalled the follower's heartbeat intake; this costs about a tenth of that.)
                await session.execute(_upsert(dialect_insert(session)), rows)
        except BaseException:
            for device_id, entry in heard.items():  # not lost: written with the next flush (unless newer came)
                self._heard.setdefault(device_id, entry)
            raise
        self.written += len(rows)
        return len(rows)

    async def read_new(self, *, everything: bool = False) -> list[tuple[str, datetime, Heartbeat]]:
        """The leader's read: rows other instances wrote since its last read (all rows, its own from before it
        led included, with ``everything``: a takeover); a row read before (the margin reads each row for
        ``READ_MARGIN_S``) is not returned again."""
        async with self._sessions() as session:
            now = (await session.execute(select(func.now()))).scalar_one()
            # the body as text: decoded (and validated) only for the rows not read before
            body = cast(HeartbeatSeen.heartbeat, Text)
            stmt = select(HeartbeatSeen.device_id, HeartbeatSeen.seen_at, body)
            if not everything:
                stmt = stmt.where(HeartbeatSeen.gateway != self._instance)  # its own: counted when heard
                if self._read_since is not None:
                    since = self._read_since - timedelta(seconds=READ_MARGIN_S)
                    stmt = stmt.where(HeartbeatSeen.written_at > since)
            rows = (await session.execute(stmt)).all()
        self._read_since = now
        if everything:
            self._known = {}
        known = self._known
        out: list[tuple[str, datetime, Heartbeat]] = []
        for device_id, seen_at, text in rows:
            if known.get(device_id) == seen_at:
                continue  # read again within the margin: already counted (validated once, not every tick)
            known[device_id] = seen_at
            try:
                out.append((device_id, seen_at, Heartbeat.model_validate_json(text)))  # as sent: strict
            except ValueError:
                log.warning("shared heartbeat unreadable; skipped", device_id=device_id)
        self.read += len(out)
        return out
