"""The forwarder: delivers outbox rows to the alarm receiver until the receiver confirms them.

Transport: HTTP POST of a batch to the receiver's ``/api/v1/intake`` in the wire contract both services import
(``wire/intake.py``); the receiver is idempotent on (device_id, alarm_id), so a batch sent twice (gateway killed
after the POST, before marking rows delivered) changes nothing. Why HTTP and not MQTT: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

import httpx
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway import metrics
from gateway.models import OutboxRow, StoredAlarm
from trygg.db import utcnow
from trygg.loops import Backoff, run_forever
from wire.intake import INTAKE_PATH, IntakeAlarm, IntakeCancel, IntakeRequest, IntakeResolve, IntakeResponse

# Keys of a stored payload that travel as fields of their own, not among the details ("is_test": only in payloads
# stored before the gateway kept its own decision in a column of its own; never read).
_NOT_DETAILS = frozenset({"alarm_id", "type", "ts", "priority", "is_test"})

log = structlog.get_logger(__name__)

BACKLOG_READ_S = 1.0  # how often, at most, the forwarder counts what it still owes while rows are pending


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


def to_wire(row: OutboxRow, alarm: StoredAlarm) -> IntakeAlarm | IntakeCancel | IntakeResolve:
    """The receiver's intake item for one outbox row."""
    key = {"device_id": row.device_id, "alarm_id": row.alarm_id}
    if row.kind == "alarm":
        return IntakeAlarm(
            **key,
            type=alarm.type,
            priority=alarm.priority,
            device_ts=alarm.device_ts,
            stored_at=alarm.stored_at,
            is_test=alarm.is_test,  # the gateway's installation-test window decided it, never the device
            details={k: v for k, v in alarm.payload.items() if k not in _NOT_DETAILS},
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
    ) -> None:
        self._sessions = sessions
        self._verify = verify  # https:// receivers: the CA of http_ca_file, else the system's
        self._url = receiver_url.rstrip("/") + INTAKE_PATH
        self._headers = {"Authorization": f"Bearer {token}"}
        self._wake = wake
        self._mark_delivered = mark_delivered
        self._on_delivered = on_delivered
        # Confirmed by the receiver, not yet marked in the table (the intake writer does that in its next
        # transaction, keeping one writer and one commit off the alarm's path). A crash forgets this set:
        # those rows are then forwarded again, which the receiver ignores.
        self._confirmed: set[int] = set()
        self._batch_max = batch_max
        self._backoff_max = backoff_max_s
        self._timeout = timeout_s
        self._task: asyncio.Task[None] | None = None
        self.receiver_reachable = False
        # Health: when the oldest row still owed to the receiver was written (None: nothing owed), read at most
        # once a second (BACKLOG_READ_S) while rows are pending.
        self.oldest_pending: datetime | None = None
        self._backlog_read_at = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="forwarder")

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self._timeout, verify=self._verify) as http:

            async def forward() -> float | None:
                sent = await self._forward_once(http)
                if not self.receiver_reachable:
                    log.info("receiver reachable")
                self.receiver_reachable = True
                return 0 if sent >= self._batch_max else None  # a full batch: more may be waiting

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
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _forward_once(self, http: httpx.AsyncClient) -> int:
        async with self._sessions() as session:
            rows = await pending_rows(session, self._batch_max, frozenset(self._confirmed))
        if not rows:
            self.oldest_pending = None
            metrics.OUTBOX_PENDING.set(0)
            return 0
        if time.monotonic() - self._backlog_read_at >= BACKLOG_READ_S:
            await self._read_backlog()
        body = IntakeRequest(items=[to_wire(row, alarm) for row, alarm in rows])
        try:
            resp = await http.post(
                self._url,
                content=body.model_dump_json(),
                headers=self._headers | {"Content-Type": "application/json"},
            )
            resp.raise_for_status()
            IntakeResponse.model_validate_json(resp.content)  # the receiver speaks the same contract
        except Exception as exc:
            await self._record_failure([row.id for row, _ in rows], str(exc) or type(exc).__name__)
            raise
        ids = [row.id for row, _ in rows]
        self._confirmed.update(ids)
        marked = self._mark_delivered(ids)
        marked.add_done_callback(lambda f: self._confirmed.difference_update(ids) if not f.cancelled() else None)
        metrics.FORWARDED.inc(len(rows))
        if self._on_delivered is not None:
            try:
                self._on_delivered([(row.kind, row.device_id, row.alarm_id) for row, _ in rows])
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
        self._backlog_read_at = time.monotonic()
        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxRow.created_at)).where(OutboxRow.delivered_at.is_(None))
                )
            ).one()
        metrics.OUTBOX_PENDING.set(count or 0)
        self.oldest_pending = oldest
        metrics.OUTBOX_OLDEST_AGE.set((utcnow() - oldest).total_seconds() if oldest is not None else 0)
