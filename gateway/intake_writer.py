"""The intake's one writer task: items in arrival order, committed in batches (group commit); what is stored and how
is :mod:`gateway.intake`'s.

It takes a flooding device's items after everyone else's (keeping that device's own order), marks the rows the
receiver confirmed in its next transaction, writes the health probe, retries a batch while the store is down or busy
and stores a batch that fails on its content item by item (the refused item answered ``UNSTORABLE`` and kept as a
dead letter)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devices import AlarmCancel, AlarmMessage
from gateway import dead_letters, metrics
from gateway.intake import _MARK_DELIVERED, IntakeItem, NewRows, _LetterMessage, is_transient, letter_item, store_batch
from gateway.models import OutboxRow, StoreProbe
from gateway.records import Letter, Outcome, Received
from trygg.db import dialect_insert, utcnow
from trygg.loops import Backoff

log = structlog.get_logger(__name__)
# Rows the receiver confirmed are marked delivered in the writer's next transaction; with no alarm coming, at the
# latest this long after the confirmation (a transaction of its own). Until then the forwarder skips them.
MARK_AFTER_S = 0.5


class IntakeWriter:
    """The single writer: submit() in arrival order, await the outcome after the batch commits."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        batch_max: int = 256,
        on_commit: asyncio.Event | None = None,
        on_rows: Callable[[NewRows], None] | None = None,
        kill_at: str | None = None,
        dead_letter_bounds: dead_letters.Bounds | None = None,
        source_of: Callable[[IntakeItem], str] | None = None,
        held: Callable[[str], bool] | None = None,
        urgent: Callable[[str], bool] | None = None,
        on_urgent: Callable[[bool], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._batch_max = batch_max
        self._bounds = dead_letter_bounds or dead_letters.Bounds()
        self._source_of = source_of or (lambda item: f"device {item.device_id}")
        # None is a wake-up: outbox rows to mark delivered are waiting in self._delivered.
        self._queue: asyncio.Queue[tuple[IntakeItem, asyncio.Future[Outcome]] | None] = asyncio.Queue()
        # Items of devices flooding (``held(device_id)``, gateway/floods.py): each commit takes them only after every
        # other item waiting, so a flood read in ahead does not stand in front of everyone else's alarms. A device's
        # items stay in one line while it has any held (its order is kept).
        self._hold = held
        self._held: deque[tuple[IntakeItem, asyncio.Future[Outcome]]] = deque()
        self._held_of: Counter[str] = Counter()
        # Items of other devices while some device floods (``urgent(device_id)``): ``on_urgent(True)`` when the first
        # comes, ``on_urgent(False)`` once none is left uncommitted (the gateway stops reading the flood meanwhile).
        self._urgent = urgent
        self._on_urgent = on_urgent
        self._urgent_left = 0
        self._delivered: list[tuple[Sequence[int], asyncio.Future[None]]] = []
        self._probes: list[asyncio.Future[None]] = []
        # Health (gateway/health.py): since when commits fail (None: the last one went through), and when the last
        # one went through (monotonic seconds).
        self.failing_since: float | None = None
        self.last_commit_ok = time.monotonic()
        self._on_commit = on_commit
        self._on_rows = on_rows
        self._mark_timer: asyncio.TimerHandle | None = None
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
        if self._urgent is not None and self._on_urgent is not None and self._urgent(item.device_id):
            self._urgent_left += 1
            if self._urgent_left == 1:
                self._on_urgent(True)
            fut.add_done_callback(self._urgent_done)
        return fut

    def _urgent_done(self, _: asyncio.Future[Outcome]) -> None:
        self._urgent_left -= 1
        if not self._urgent_left and self._on_urgent is not None:
            self._on_urgent(False)

    def mark_delivered(self, ids: Sequence[int]) -> asyncio.Future[None]:
        """Mark outbox rows delivered in the writer's next transaction (the gateway has one writer): the one of the
        next alarms, or one of its own after :data:`MARK_AFTER_S` when none comes. Not a commit per forwarded batch:
        those were 6-20 % of the gateway's commits at 50 alarms/s (docs/benchmarks.md), each a wait on the disk
        ahead of the next alarm's."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._delivered.append((ids, fut))
        if self._mark_timer is None:
            self._mark_timer = loop.call_later(MARK_AFTER_S, self._marks_due)
        return fut

    def _marks_due(self) -> None:
        self._mark_timer = None
        if self._delivered:
            self._queue.put_nowait(None)

    def probe(self) -> asyncio.Future[None]:
        """Write the store's probe row in the writer's next transaction (health, when nothing else was written)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._probes.append(fut)
        self._queue.put_nowait(None)
        return fut

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self) -> None:
        if self._mark_timer is not None:
            self._mark_timer.cancel()
            self._mark_timer = None
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while not self._queue.empty():  # unanswered: the device resends, the broker redelivers
            entry = self._queue.get_nowait()
            if entry is not None and not entry[1].done():
                entry[1].cancel()
        for _, fut in self._held:
            if not fut.done():
                fut.cancel()
        self._held.clear()
        self._held_of.clear()
        for _, done in self._delivered:  # stay pending in the table: forwarded again, harmlessly
            done.cancel()
        self._delivered.clear()
        for probe in self._probes:
            probe.cancel()
        self._probes.clear()

    async def _run(self) -> None:
        while True:
            batch: list[tuple[IntakeItem, asyncio.Future[Outcome]]] = []
            if not self._held:  # else held items wait: take what else came, without waiting for more
                self._take(await self._queue.get(), batch)
            while len(batch) < self._batch_max and not self._queue.empty():
                self._take(self._queue.get_nowait(), batch)
            while self._held and len(batch) < self._batch_max:  # the floods' items: after everyone else's
                held = self._held.popleft()
                batch.append(held)
                device_id = held[0].device_id
                self._held_of[device_id] -= 1
                if not self._held_of[device_id]:
                    del self._held_of[device_id]
            delivered, self._delivered = self._delivered, []
            probes, self._probes = self._probes, []
            if not (batch or delivered or probes):
                continue  # a wake-up whose marks rode with an earlier batch
            if delivered and self._mark_timer is not None:
                self._mark_timer.cancel()
                self._mark_timer = None
            await self._commit(batch, delivered, probes)

    def _take(self, entry: tuple[IntakeItem, asyncio.Future[Outcome]] | None, batch: list[Any]) -> None:
        """Into this commit's batch, or held back when its device floods (or has items held: its order is kept)."""
        if entry is None:
            return
        device_id = entry[0].device_id
        if self._hold is not None and (device_id in self._held_of or self._hold(device_id)):
            self._held.append(entry)
            self._held_of[device_id] += 1
        else:
            batch.append(entry)

    async def _commit(
        self,
        batch: list[tuple[IntakeItem, asyncio.Future[Outcome]]],
        delivered: list[tuple[Sequence[int], asyncio.Future[None]]],
        probes: Sequence[asyncio.Future[None]] = (),
    ) -> None:
        started = time.perf_counter()
        delivered_ids = [i for ids, _ in delivered for i in ids]
        backoff = Backoff(0.2, 5.0)
        while True:
            new_rows = NewRows()  # of this attempt: a failed one wrote nothing
            try:
                async with self._sessions.begin() as session:
                    items = [item for item, _ in batch]
                    outcomes = await store_batch(session, items, self._bounds, new_rows) if batch else []
                    if self._kill_at_stored:
                        new = sum(o is Outcome.STORED for o in outcomes)
                        self._kill_armed = self._stored < self._kill_at_stored <= self._stored + new
                    if delivered_ids:
                        await session.execute(
                            _MARK_DELIVERED, {"delivered_ids": delivered_ids, "delivered_now": utcnow()}
                        )
                    if probes:
                        await _write_probe(session)
                    if batch:
                        self._maybe_die("before_commit")
                self.failing_since = None
                self.last_commit_ok = time.monotonic()
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
                    new_rows = NewRows(others=1)  # not collected one by one: the forwarder reads the store
                    break
                # the database is down, locked or full: keep the batch, retry
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
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
        for done in (*(d for _, d in delivered), *probes):
            if not done.done():
                done.set_result(None)
        if not batch:
            return
        self._maybe_die("after_commit")
        self._stored += sum(o is Outcome.STORED for o in outcomes)
        metrics.INTAKE_BATCH.observe(time.perf_counter() - started)
        if self._on_rows is not None and (new_rows.alarms or new_rows.others):
            try:
                self._on_rows(new_rows)
            except Exception as exc:  # the forwarder's bookkeeping must not touch the alarm path; it reads the store
                log.error("handing new outbox rows to the forwarder failed", error_type=type(exc).__name__)
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


async def _write_probe(session: AsyncSession) -> None:
    """One row, rewritten: a commit that touches the file, as an alarm's would."""
    insert = dialect_insert(session)
    now = utcnow()
    await session.execute(
        insert(StoreProbe)
        .values(id=1, probed_at=now)
        .on_conflict_do_update(index_elements=["id"], set_={"probed_at": now})
    )


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
