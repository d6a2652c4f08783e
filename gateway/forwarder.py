"""The forwarder: delivers outbox rows to the alarm receiver until the receiver confirms them.

Which rows: the durable outbox is the source of truth, read with :func:`pending_rows` after a start, after any
failure and at least every :data:`RESYNC_S` seconds. In between, when that read found every pending row (fewer than
a batch) and this gateway is the store's only writer (``direct``), the intake writer hands each commit's new alarm
rows over (``committed``: ids and the rows as written) and the forwarder sends them from memory, in the same fair
order, without reading them back: at 200 alarms/s that read was a query per one to three alarms. A cancel or
resolution, a batch stored one by one, a failed request or more than two batches in memory end that until the
next read, so a cancel is always ordered against its alarm by the store's ids.

Transport: HTTP POST of a batch to the receiver's ``/api/v1/intake`` in the wire contract both services import
(``wire/intake.py``); the receiver is idempotent on (device_id, alarm_id), so a batch sent twice (gateway killed
after the POST, before marking rows delivered) changes nothing. Why HTTP and not MQTT: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.intake import NewRows
from gateway.models import OutboxRow, StoredAlarm
from trygg.db import utcnow
from trygg.loops import Backoff, run_forever
from wire.intake import INTAKE_PATH, IntakeAlarm, IntakeCancel, IntakeRequest, IntakeResolve, IntakeResponse

# Keys of a stored payload that travel as fields of their own, not among the details ("is_test": only in payloads
# stored before the gateway kept its own decision in a column of its own; never read).
_NOT_DETAILS = frozenset({"alarm_id", "type", "ts", "priority", "is_test"})

log = structlog.get_logger(__name__)

BACKLOG_READ_S = 1.0  # how often, at most, the forwarder counts what it still owes while rows are pending
RESYNC_S = 2.0  # rows handed over in memory are forwarded without reading the store for at most this long

WireItem = IntakeAlarm | IntakeCancel | IntakeResolve


@dataclass(frozen=True, slots=True)
class _Pending:
    """An outbox row to forward: what orders it, and its intake item (or the stored alarm's row to make it of)."""

    id: int
    kind: str
    device_id: str
    alarm_id: str
    priority: int
    item: WireItem | dict[str, Any]

    def wire(self) -> WireItem:
        if isinstance(self.item, dict):
            return alarm_item(self.item)
        return self.item


def fair_order(rows: Collection[_Pending], limit: int) -> list[_Pending]:
    """:func:`pending_rows`'s order for rows held in memory: by each row's place in its device's line, then
    priority (highest first), then id."""
    place: dict[str, int] = {}
    keyed = []
    for row in sorted(rows, key=lambda r: r.id):
        place[row.device_id] = n = place.get(row.device_id, 0) + 1
        keyed.append((n, -row.priority, row.id, row))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed[:limit]]


async def pending_rows(
    session: AsyncSession, limit: int, skip: Collection[int] = ()
) -> list[tuple[OutboxRow, StoredAlarm]]:
    """The next rows to forward: fair across devices, then by priority; each device's own rows in their order.

    Every pending row gets its place in its device's line (1 for the device's oldest); rows are served by that
    place first, then by priority (highest first), then age. One device's flood of 100,000 rows therefore takes
    one place per round like any other device, and another device's alarm goes in the next batch instead of after
    the flood (strict FIFO made that 6.4 minutes, issue 8). Each device's rows keep their order, so a cancel never
    overtakes its alarm."""
    place = func.row_number().over(partition_by=OutboxRow.device_id, order_by=OutboxRow.id).label("place")
    pending = select(OutboxRow.id.label("id"), place).where(OutboxRow.delivered_at.is_(None))
    if skip:
        pending = pending.where(OutboxRow.id.not_in(skip))
    line = pending.subquery()
    stmt = (
        select(OutboxRow, StoredAlarm)
        .join(line, line.c.id == OutboxRow.id)
        .join(
            StoredAlarm,
            (StoredAlarm.device_id == OutboxRow.device_id) & (StoredAlarm.alarm_id == OutboxRow.alarm_id),
        )
        .order_by(line.c.place, StoredAlarm.priority.desc(), OutboxRow.id)
        .limit(limit)
    )
    return [(row, alarm) for row, alarm in (await session.execute(stmt)).all()]


def alarm_item(alarm: dict[str, Any]) -> IntakeAlarm:
    """The intake item of a stored alarm, from its row of ``intake_alarms`` (as written or as read back)."""
    return IntakeAlarm(
        device_id=alarm["device_id"],
        alarm_id=alarm["alarm_id"],
        type=alarm["type"],
        priority=alarm["priority"],
        device_ts=alarm["device_ts"].astimezone(UTC),  # as the store reads it back
        stored_at=alarm["stored_at"].astimezone(UTC),
        is_test=alarm["is_test"],  # the gateway's installation-test window decided it, never the device
        details={k: v for k, v in alarm["payload"].items() if k not in _NOT_DETAILS},
    )


def to_wire(row: OutboxRow, alarm: StoredAlarm) -> WireItem:
    """The receiver's intake item for one outbox row."""
    key = {"device_id": row.device_id, "alarm_id": row.alarm_id}
    if row.kind == "alarm":
        return alarm_item(
            {
                **key,
                "type": alarm.type,
                "priority": alarm.priority,
                "device_ts": alarm.device_ts,
                "stored_at": alarm.stored_at,
                "is_test": alarm.is_test,
                "payload": alarm.payload,
            }
        )
    if row.kind == "resolve":
        return IntakeResolve.model_validate({**(row.payload or {}), **key})
    return IntakeCancel(**key, cancelled_at=alarm.cancelled_at or row.created_at)


class Forwarder:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        receiver_url: str,
        token: str,
        wake: asyncio.Event,
        mark_delivered: Callable[[Sequence[int]], asyncio.Future[None]],
        on_delivered: Callable[[Sequence[tuple[str, str, str]]], None] | None = None,
        batch_max: int = 200,
        backoff_max_s: float = 30.0,
        timeout_s: float = 5.0,
        verify: ssl.SSLContext | bool = True,
        direct: bool = True,
    ) -> None:
        self._sessions = sessions
        self._verify = verify  # https:// receivers: the CA of http_ca_file, else the system's
        self._url = receiver_url.rstrip("/") + INTAKE_PATH
        self._headers = {"Authorization": f"Bearer {token}"}
        self._wake = wake
        self._mark_delivered = mark_delivered
        self._on_delivered = on_delivered
        # Confirmed by the receiver, not yet marked in the table (the intake writer does that in the transaction of
        # the next alarms, or in one of its own MARK_AFTER_S later: one writer, no commit of its own on the alarm's
        # path). A crash forgets this set: those rows are then forwarded again, which the receiver ignores.
        self._confirmed: set[int] = set()
        # Rows handed over by the intake writer (module docstring). ``_complete``: these and ``_confirmed`` are all
        # the pending rows of the store, read at ``_synced_at``; ``_tracking``: hand-overs are kept (also while a
        # read is under way); ``_spoiled``: something since the read began is not in memory. Only with ``direct``
        # (this gateway the store's only writer).
        self._direct = direct
        self._known: dict[int, _Pending] = {}
        self._complete = False
        self._tracking = False
        self._spoiled = False
        self._synced_at = 0.0
        self._batch_max = batch_max
        self._backoff_max = backoff_max_s
        self._timeout = timeout_s
        self._task: asyncio.Task[None] | None = None
        self.receiver_reachable = False
        # Health: when the oldest row still owed to the receiver was written (None: nothing owed), read at most
        # once a second (BACKLOG_READ_S) while rows are pending.
        self.oldest_pending: datetime | None = None
        self._backlog_read_at = 0.0
        self._backlog_task: asyncio.Task[None] | None = None
        self._nothing_pending_at = 0  # counts rounds that found nothing: a read begun before one of them is stale

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="forwarder")

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self._timeout, verify=self._verify) as http:

            async def forward() -> float | None:
                sent = await self._forward_once(http)
                if not self.receiver_reachable:
                    log.info("receiver reachable")
                self.receiver_reachable = True
                # a full batch, or rows handed over meanwhile: more is waiting
                return 0 if sent >= self._batch_max or (self._complete and self._known) else None

            await run_forever(
                "forward to receiver",
                forward,
                every_s=5.0,
                wake=self._wake,
                backoff=Backoff(0.2, self._backoff_max),
                on_failure=self._failed,
                log=log,
            )

    def _failed(self, exc: BaseException) -> None:
        metrics.FORWARD_FAILURES.inc()
        self.receiver_reachable = False

    async def stop(self) -> None:
        tasks = [task for task in (self._backlog_task, self._task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # neither holds a connection of the store after this
        self._task = None

    def committed(self, rows: NewRows) -> None:
        """The intake writer committed new outbox rows (called right after the commit, before anyone is told)."""
        if not self._tracking:
            return
        try:
            if rows.others or len(self._known) + len(rows.alarms) > 2 * self._batch_max:
                self._drop()  # read from the store: cancels order against their alarms there, a backlog is fair there
                return
            for outbox_id, alarm in rows.alarms:
                self._known[outbox_id] = _Pending(
                    outbox_id, "alarm", alarm["device_id"], alarm["alarm_id"], alarm["priority"], alarm
                )
        except Exception:
            self._drop()
            raise

    def _drop(self) -> None:
        """Forget what memory holds: the next round reads the store."""
        self._known.clear()
        self._complete = self._tracking = False
        self._spoiled = True

    async def _next_rows(self) -> list[_Pending]:
        """The next batch: from memory while it holds every pending row, otherwise (and every RESYNC_S) read."""
        if self._complete and time.monotonic() - self._synced_at < RESYNC_S:
            return fair_order(self._known.values(), self._batch_max)
        self._tracking, self._spoiled = self._direct, False
        started = time.monotonic()
        async with self._sessions() as session:
            found = await pending_rows(session, self._batch_max, frozenset(self._confirmed))
        rows = [_Pending(r.id, r.kind, r.device_id, r.alarm_id, a.priority, to_wire(r, a)) for r, a in found]
        if self._direct and len(rows) < self._batch_max and not self._spoiled:
            # every pending row: these, and those committed since the read began (handed over meanwhile)
            self._complete, self._synced_at = True, started
            for row in rows:
                self._known.setdefault(row.id, row)
        else:
            self._drop()
        return rows

    async def _forward_once(self, http: httpx.AsyncClient) -> int:
        rows = await self._next_rows()
        if not rows:
            self._nothing_pending_at += 1
            self.oldest_pending = None
            metrics.OUTBOX_PENDING.set(0)
            metrics.OUTBOX_OLDEST_AGE.set(0)
            return 0
        if time.monotonic() - self._backlog_read_at >= BACKLOG_READ_S and self._backlog_task is None:
            # beside the request, not before it: the read waits for the store's one connection (on SQLite behind
            # the writer's commit), which put a commit's wait on the alarms of one request a second
            self._backlog_read_at = time.monotonic()
            self._backlog_task = asyncio.create_task(self._read_backlog(), name="forwarder-backlog")
        body = IntakeRequest(items=[row.wire() for row in rows])
        try:
            resp = await http.post(
                self._url,
                content=body.model_dump_json(),
                headers=self._headers | {"Content-Type": "application/json"},
            )
            resp.raise_for_status()
            IntakeResponse.model_validate_json(resp.content)  # the receiver speaks the same contract
        except Exception as exc:
            self._drop()
            await self._record_failure([row.id for row in rows], str(exc) or type(exc).__name__)
            raise
        ids = [row.id for row in rows]
        for i in ids:
            self._known.pop(i, None)
        self._confirmed.update(ids)
        marked = self._mark_delivered(ids)
        marked.add_done_callback(lambda f: self._confirmed.difference_update(ids) if not f.cancelled() else None)
        metrics.FORWARDED.inc(len(rows))
        if self._on_delivered is not None:
            try:
                self._on_delivered([(row.kind, row.device_id, row.alarm_id) for row in rows])
            except Exception as exc:  # an observer's bug must not stop forwarding
                log.error("delivery observer failed", error=str(exc))
        return len(rows)

    async def _record_failure(self, ids: Sequence[int], error: str) -> None:
        try:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(ids))
                    .values(attempts=OutboxRow.attempts + 1, last_error=error[:500])
                )
        except Exception as exc:  # bookkeeping only; the rows stay pending either way
            log.error("could not record forward failure", error=str(exc))

    async def _read_backlog(self) -> None:
        """Health: how many rows are owed and since when (at most every BACKLOG_READ_S, while rows are pending)."""
        round_ = self._nothing_pending_at
        try:
            async with self._sessions() as session:
                count, oldest = (
                    await session.execute(
                        select(func.count(), func.min(OutboxRow.created_at)).where(OutboxRow.delivered_at.is_(None))
                    )
                ).one()
        except Exception as exc:  # health bookkeeping: the next round reads again
            log.error("could not read the outbox backlog", error_type=type(exc).__name__)
            return
        finally:
            self._backlog_task = None
        if round_ != self._nothing_pending_at:
            return  # a round found nothing pending meanwhile: that is newer than this read
        metrics.OUTBOX_PENDING.set(count or 0)
        self.oldest_pending = oldest
        metrics.OUTBOX_OLDEST_AGE.set((utcnow() - oldest).total_seconds() if oldest is not None else 0)
