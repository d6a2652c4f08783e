"""Durable alarm intake: validated alarms are stored with their outbox row in one transaction.

One writer task takes items in arrival order and commits them in batches (group commit): messages of
one device are stored in the order they came, many devices share one commit, and the device is told
``stored`` only after that commit. The store is keyed by (device_id, alarm_id), so a resend is answered
again but never stored twice. A batch's consecutive alarms are written with one multi-row
``INSERT ... ON CONFLICT DO NOTHING RETURNING`` and one insert of their outbox rows (a few round trips per commit,
not two per alarm); a cancel or resolution is written in its place, so it sees what came before it.

An alarm from a device is filed by the gateway's rules, not the device's: its priority never below its type's
default for a life-safety type (``devices.effective_priority``), the client reference from the registry, the
installation-test flag from the gateway's own window (``is_test`` on the item), and whatever the device sent beyond
the contract kept apart as ``device_extra``, never interpreted.

Dead letters (``gateway/dead_letters.py``) are written here too, in the same group commits. A batch that fails is
retried as a whole while the store is down or busy (:func:`is_transient`: the message is not at fault, it must
not be lost); a batch that fails on its content is stored item by item, and only the item the store refuses is
answered ``UNSTORABLE`` and kept as a dead letter. One bad item never stops the others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devices import DEFAULT_PRIORITY, AlarmCancel, AlarmMessage, effective_priority
from gateway import dead_letters, metrics
from gateway.models import Device, OutboxRow, StoredAlarm
from gateway.records import Letter, Outcome, Received
from trygg.db import dialect_insert, utcnow
from trygg.loops import Backoff

log = structlog.get_logger(__name__)


def is_transient(exc: BaseException) -> bool:
    """The store (or the way to it) is down, busy or full: retry later, the message is not at fault.

    Everything else a statement raises (a value the store refuses, a bug in how an item is written) belongs to the
    item: it is isolated, answered and kept as a dead letter instead of stopping the intake."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return isinstance(exc, sa_exc.TimeoutError | OSError | TimeoutError)


@dataclass(frozen=True, slots=True)
class Resolution:
    """The gateway closes an alarm it raised itself (a device back online, a check-in done)."""

    alarm_id: str
    outcome: str  # English, for API users
    actor: str = "gateway"
    code: str | None = None  # the outcome as a code with parameters, for the console
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _LetterMessage:
    """A dead letter queued for the writer (``letter_item``)."""

    letter: Letter


@dataclass(slots=True)
class IntakeItem:
    device_id: str
    message: AlarmMessage | AlarmCancel | Resolution | _LetterMessage
    received_at: datetime = field(default_factory=utcnow)
    is_test: bool = False  # an installation test (the gateway's window): travels the whole chain, not to the patrol
    from_device: bool = True  # False: an alarm the gateway raises itself, filed with ``details``
    details: dict[str, Any] = field(default_factory=dict)  # JSON values; only for the gateway's own alarms
    received: Received | None = None  # the device's message as it came (kept if the store refuses the item)


def letter_item(letter: Letter) -> IntakeItem:
    return IntakeItem(letter.device_id or "", _LetterMessage(letter), received_at=letter.received_at)


async def store_batch(
    session: AsyncSession, items: Sequence[IntakeItem], bounds: dead_letters.Bounds | None = None
) -> list[Outcome]:
    """Store a batch inside the caller's transaction; returns one outcome per item, in order."""
    letters = [item.message.letter for item in items if isinstance(item.message, _LetterMessage)]
    if letters:
        bounds = bounds or dead_letters.Bounds()
        dead_letters.add(session, letters, bounds)
        await dead_letters.prune(session, bounds)
        if len(letters) == len(items):
            return [Outcome.DEAD_LETTERED] * len(items)
    ids = {item.device_id for item in items if not isinstance(item.message, _LetterMessage)}
    rows = await session.execute(
        select(Device.id, Device.retired_at, Device.client_ref, Device.area).where(Device.id.in_(ids))
    )
    found = rows.all()
    known = {device_id: retired_at for device_id, retired_at, _, _ in found}
    # what the operators' queue needs of the registry: whose device, and which area (its filter)
    registry = {
        device_id: {k: v for k, v in (("client_ref", client_ref), ("area", area)) if v}
        for device_id, _, client_ref, area in found
    }
    outcomes: list[Outcome | None] = [None] * len(items)
    run: list[int] = []  # consecutive new alarms: one statement for all of them
    for i, item in enumerate(items):
        if isinstance(item.message, _LetterMessage):
            outcomes[i] = Outcome.DEAD_LETTERED
            continue
        if item.device_id not in known:
            outcomes[i] = Outcome.UNKNOWN_DEVICE
            continue
        if known[item.device_id] is not None:
            outcomes[i] = Outcome.RETIRED_DEVICE
            continue
        msg = item.message
        if isinstance(msg, AlarmMessage):
            run.append(i)
            continue
        # a cancel or a resolution sees every alarm that came before it in the batch, as if stored one by one
        await _store_alarms(session, items, run, registry, outcomes)
        run = []
        if isinstance(msg, Resolution):
            outcomes[i] = await _resolve(session, item.device_id, msg, item.received_at)
        else:
            outcomes[i] = await _cancel(session, item.device_id, msg, item.received_at)
    await _store_alarms(session, items, run, registry, outcomes)
    await session.flush()
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(items), "every item has its outcome"
    return done


async def _store_alarms(
    session: AsyncSession,
    items: Sequence[IntakeItem],
    indexes: Sequence[int],
    registry: dict[str, dict[str, Any]],
    outcomes: list[Outcome | None],
) -> None:
    """Store the alarms at ``indexes`` (in arrival order) with a few statements whatever their number: one
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the alarms, one read for those already there, one insert
    for their outbox rows. Each round trip to the store is paid by the whole batch, not by each alarm."""
    if not indexes:
        return
    table = StoredAlarm.__table__
    rows = []
    for i in indexes:
        item = items[i]
        msg = item.message
        assert isinstance(msg, AlarmMessage)
        priority, payload = _filed(item, msg)
        payload.update(registry.get(item.device_id, {}))
        rows.append(
            {
                "device_id": item.device_id,
                "alarm_id": msg.alarm_id,
                "type": msg.type.value,
                "priority": priority,
                "device_ts": msg.ts,
                "stored_at": item.received_at,
                "payload": payload,
                "is_test": item.is_test,
            }
        )
    # executemany: SQLAlchemy sends it as multi-row statements ("insertmanyvalues"), compiled once and cached
    result = await session.execute(
        dialect_insert(session)(table)
        .on_conflict_do_nothing(index_elements=["device_id", "alarm_id"])
        .returning(table.c.device_id, table.c.alarm_id),
        rows,
    )
    inserted = {(device_id, alarm_id) for device_id, alarm_id in result.all()}
    outbox: list[dict[str, Any]] = []
    again: list[int] = []
    for i in indexes:
        item = items[i]
        assert isinstance(item.message, AlarmMessage)
        key = (item.device_id, item.message.alarm_id)
        if key in inserted:
            inserted.discard(key)  # the first of the batch is stored; the same alarm again in it is a resend
            outbox.append({"kind": "alarm", "device_id": key[0], "alarm_id": key[1], "created_at": utcnow()})
            outcomes[i] = Outcome.STORED
        else:
            again.append(i)
    if outbox:
        await session.execute(insert(OutboxRow), outbox)  # ORM bulk insert: one executemany
    if again:
        # A resend carries the same type and timestamp; anything else reuses an id for a new alarm, which must
        # not be swallowed as a duplicate.
        devices = {items[i].device_id for i in again}
        alarm_ids = {items[i].message.alarm_id for i in again}  # type: ignore[union-attr]
        stored = {
            (row.device_id, row.alarm_id): (row.type, row.device_ts)
            for row in await session.execute(
                select(StoredAlarm.device_id, StoredAlarm.alarm_id, StoredAlarm.type, StoredAlarm.device_ts).where(
                    StoredAlarm.device_id.in_(devices), StoredAlarm.alarm_id.in_(alarm_ids)
                )
            )
        }
        for i in again:
            msg = items[i].message
            assert isinstance(msg, AlarmMessage)
            same = stored.get((items[i].device_id, msg.alarm_id)) == (msg.type.value, msg.ts)
            outcomes[i] = Outcome.DUPLICATE if same else Outcome.ALARM_ID_REUSED


async def _cancel(session: AsyncSession, device_id: str, msg: AlarmCancel, at: datetime) -> Outcome:
    exists = await session.scalar(
        select(StoredAlarm.cancelled_at.is_not(None)).where(
            StoredAlarm.device_id == device_id, StoredAlarm.alarm_id == msg.alarm_id
        )
    )
    if exists is None:
        return Outcome.UNKNOWN_ALARM
    if exists:
        return Outcome.CANCEL_DUPLICATE
    await session.execute(
        update(StoredAlarm)
        .where(StoredAlarm.device_id == device_id, StoredAlarm.alarm_id == msg.alarm_id)
        .values(cancelled_at=at)
    )
    session.add(OutboxRow(kind="cancel", device_id=device_id, alarm_id=msg.alarm_id))
    return Outcome.CANCELLED


def _filed(item: IntakeItem, msg: AlarmMessage) -> tuple[int, dict[str, Any]]:
    """The priority and the stored payload of an alarm: a device's by the gateway's rules, the gateway's own as
    raised. Nothing a device sends outside the contract's fields lands beside them: it is ``device_extra``."""
    payload = msg.contract_fields()
    if not item.from_device:
        priority = msg.priority if msg.priority is not None else DEFAULT_PRIORITY[msg.type]
        return priority, payload | item.details
    extra = msg.device_extra()
    if extra:
        payload["device_extra"] = extra
    if item.received is not None:
        payload["protocol"] = item.received.protocol
    return effective_priority(msg.type, msg.priority), payload


async def _resolve(session: AsyncSession, device_id: str, msg: Resolution, at: datetime) -> Outcome:
    where = (StoredAlarm.device_id == device_id, StoredAlarm.alarm_id == msg.alarm_id)
    resolved = await session.scalar(select(StoredAlarm.resolved_at.is_not(None)).where(*where))
    if resolved is None:
        return Outcome.UNKNOWN_ALARM
    if resolved:
        return Outcome.RESOLVE_DUPLICATE
    await session.execute(update(StoredAlarm).where(*where).values(resolved_at=at))
    session.add(
        OutboxRow(
            kind="resolve",
            device_id=device_id,
            alarm_id=msg.alarm_id,
            payload={"outcome": msg.outcome, "actor": msg.actor, "resolved_at": at.isoformat()}
            | ({"code": msg.code, "params": msg.params or {}} if msg.code else {}),
        )
    )
    return Outcome.RESOLVED


class IntakeWriter:
    """The single writer: submit() in arrival order, await the outcome after the batch commits."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        batch_max: int = 256,
        on_commit: asyncio.Event | None = None,
        kill_at: str | None = None,
        dead_letter_bounds: dead_letters.Bounds | None = None,
        source_of: Callable[[IntakeItem], str] | None = None,
    ) -> None:
        self._sessions = sessions
        self._batch_max = batch_max
        self._bounds = dead_letter_bounds or dead_letters.Bounds()
        self._source_of = source_of or (lambda item: f"device {item.device_id}")
        # None is a wake-up: outbox rows to mark delivered are waiting in self._delivered.
        self._queue: asyncio.Queue[tuple[IntakeItem, asyncio.Future[Outcome]] | None] = asyncio.Queue()
        self._delivered: list[tuple[Sequence[int], asyncio.Future[None]]] = []
        self._on_commit = on_commit
        self._task: asyncio.Task[None] | None = None
        # Fault injection counts newly stored alarms, not batches: a device's resend (a duplicate) or a
        # slow machine splitting a burst into more batches must not move the moment of the kill.
        self._stored = 0
        self._kill_point, _, n = (kill_at or "").partition(":")
        self._kill_at_stored = int(n) if n else 0
        self._kill_armed = False

    def _maybe_die(self, point: str) -> None:
        """Fault injection for the crash tests (setting ``fault_kill_at``); a no-op otherwise.

        Kills the process in the batch that stores the N-th new alarm, before or after its commit."""
        if self._kill_armed and self._kill_point == point:
            log.critical("fault injection: killing the gateway", point=point, stored=self._stored)
            os.kill(os.getpid(), signal.SIGKILL)

    def submit(self, item: IntakeItem) -> asyncio.Future[Outcome]:
        """Queue an item; synchronous so that callers keep arrival order."""
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return fut

    def mark_delivered(self, ids: Sequence[int]) -> asyncio.Future[None]:
        """Mark outbox rows delivered in the writer's next transaction (the gateway has one writer)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._delivered.append((ids, fut))
        self._queue.put_nowait(None)
        return fut

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():  # unanswered: the device resends, the broker redelivers
            entry = self._queue.get_nowait()
            if entry is not None and not entry[1].done():
                entry[1].cancel()
        for _, done in self._delivered:  # stay pending in the table: forwarded again, harmlessly
            done.cancel()
        self._delivered.clear()

    async def _run(self) -> None:
        while True:
            batch: list[tuple[IntakeItem, asyncio.Future[Outcome]]] = []
            entry = await self._queue.get()
            while True:
                if entry is not None:
                    batch.append(entry)
                if len(batch) >= self._batch_max or self._queue.empty():
                    break
                entry = self._queue.get_nowait()
            delivered, self._delivered = self._delivered, []
            await self._commit(batch, delivered)

    async def _commit(
        self,
        batch: list[tuple[IntakeItem, asyncio.Future[Outcome]]],
        delivered: list[tuple[Sequence[int], asyncio.Future[None]]],
    ) -> None:
        started = time.perf_counter()
        delivered_ids = [i for ids, _ in delivered for i in ids]
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with self._sessions.begin() as session:
                    items = [item for item, _ in batch]
                    outcomes = await store_batch(session, items, self._bounds) if batch else []
                    if self._kill_at_stored:
                        new = sum(o is Outcome.STORED for o in outcomes)
                        self._kill_armed = self._stored < self._kill_at_stored <= self._stored + new
                    if delivered_ids:
                        await session.execute(
                            update(OutboxRow)
                            .where(OutboxRow.id.in_(delivered_ids))
                            .values(delivered_at=utcnow(), attempts=OutboxRow.attempts + 1)
                        )
                    if batch:
                        self._maybe_die("before_commit")
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if batch and not is_transient(exc):  # something in the batch: find it, store the rest
                    log.error(
                        "intake batch refused on its content; storing its items one by one",
                        error=dead_letters.where(exc),
                        batch=len(batch),
                    )
                    outcomes = await self._one_by_one([item for item, _ in batch], delivered_ids)
                    break
                # the database is down, locked or full: keep the batch, retry
                metrics.STORE_ERRORS.inc()
                retry_in = backoff.next()
                log.error(
                    "intake commit failed, retrying",
                    error=dead_letters.where(exc),
                    batch=len(batch),
                    attempt=backoff.failures,
                    retry_in_s=round(retry_in, 2),
                )
                await asyncio.sleep(retry_in)
        for _, done in delivered:
            if not done.done():
                done.set_result(None)
        if not batch:
            return
        self._maybe_die("after_commit")
        self._stored += sum(o is Outcome.STORED for o in outcomes)
        metrics.INTAKE_BATCH.observe(time.perf_counter() - started)
        if self._on_commit is not None and any(
            o in (Outcome.STORED, Outcome.CANCELLED, Outcome.RESOLVED) for o in outcomes
        ):
            self._on_commit.set()
        for (_, fut), outcome in zip(batch, outcomes, strict=True):
            if not fut.done():
                fut.set_result(outcome)

    async def _one_by_one(self, items: list[IntakeItem], delivered_ids: list[int]) -> list[Outcome]:
        """The slow path after a batch failed on its content: each item in a transaction of its own."""
        if delivered_ids:
            await self._retrying(self._mark, delivered_ids)
        outcomes = []
        for item in items:
            outcomes.append(await self._retrying(self._store_one, item))
        return outcomes

    async def _retrying(self, step: Callable[[Any], Any], arg: Any) -> Any:
        """``step(arg)`` in a transaction, retried while the store is down; a content failure is the step's."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                return await step(arg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                metrics.STORE_ERRORS.inc()
                await asyncio.sleep(backoff.next())

    async def _mark(self, ids: list[int]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids))
                .values(delivered_at=utcnow(), attempts=OutboxRow.attempts + 1)
            )

    async def _store_one(self, item: IntakeItem) -> Outcome:
        try:
            async with self._sessions.begin() as session:
                [outcome] = await store_batch(session, [item], self._bounds)
            return outcome
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, asyncio.CancelledError):
                raise
            error = dead_letters.where(exc)
        metrics.UNSTORABLE.inc()
        if isinstance(item.message, _LetterMessage):  # a dead letter the store refused: nothing left to keep it in
            log.error("dead letter could not be stored", code=item.message.letter.code, error=error)
            return Outcome.UNSTORABLE
        log.error("intake item refused by the store; kept as a dead letter", device_id=item.device_id, error=error)
        received = item.received or Received(self._source_of(item), _describe(item).encode())
        letter = Letter(received, "unstorable", error, item.device_id, _kind(item), item.received_at)
        await self._retrying(self._store_letter, letter)
        metrics.DEAD_LETTERS.labels("unstorable").inc()
        return Outcome.UNSTORABLE

    async def _store_letter(self, letter: Letter) -> None:
        try:
            async with self._sessions.begin() as session:
                await store_batch(session, [letter_item(letter)], self._bounds)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("dead letter could not be stored", code=letter.code, error=dead_letters.where(exc))


def _kind(item: IntakeItem) -> str:
    if isinstance(item.message, AlarmMessage):
        return "alarm"
    return "alarm/cancel" if isinstance(item.message, AlarmCancel) else "resolve"


def _describe(item: IntakeItem) -> str:
    """A gateway-made item as text, for its dead letter (a device's own comes with what it sent)."""
    try:
        return repr((item.message, item.details))[:4096]
    except Exception:
        return type(item.message).__name__
