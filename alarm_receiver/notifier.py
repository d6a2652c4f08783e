"""Publishes notices owed to devices (``acknowledged``: help is coming) from the notice outbox.

A notice is marked sent only when the broker's PUBACK for it has arrived (``trygg.mqtt.PubackTracker``).
Until then it stays unsent in the table: a receiver killed between publish and PUBACK, or a reconnect
that drops the in-flight message, sends it again. A device may therefore hear the same notice twice
(the contract says to ignore repeats); it never hears none. While the broker is unreachable the notices
wait in the table.

**Two brokers** (``mqtt_second_url``): the receiver does not know which broker a device is on (it fails over to
the second when the first does not answer, and goes home again), so a notice is published on every broker that is
connected when it goes out, as the gateway does with what is not an answer, and marked sent once each of those
has confirmed it. A device holds a persistent session on each broker it uses, so it gets the notice where it is,
or when it comes back to that broker; hearing it on both is a repeat, which the contract says to ignore. A broker
that is down when the notice goes out does not get it: no device is connected there then.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alarm_receiver import metrics
from alarm_receiver.models import DeviceNotice
from devices import AckStatus, AlarmAck, DeviceTopic, Topics
from trygg import mqtt
from trygg.db import utcnow
from trygg.loops import run_forever

log = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 1000


class DeviceNotifier:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        connections: mqtt.MqttConnection | Sequence[mqtt.MqttConnection],
        topics: Topics,
        wake: asyncio.Event,
        is_leader: Callable[[], bool] = lambda: True,
    ) -> None:
        self._sessions = sessions
        # one per broker, each made with its own PubackTracker: publish_confirmed completes on that broker's PUBACK
        self._connections = [connections] if isinstance(connections, mqtt.MqttConnection) else list(connections)
        self._topics = topics
        self._wake = wake
        self._is_leader = is_leader  # several receivers: one tells the devices (trygg/leader.py)
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()  # published, PUBACK not yet seen
        self._confirmed: list[int] = []  # PUBACK seen, not yet marked sent in the table

    def start(self) -> None:
        self._task = asyncio.create_task(
            run_forever("device notice round", self._round, every_s=2.0, wake=self._wake, log=log),
            name="device-notifier",
        )

    def in_flight(self, notice_id: int) -> bool:
        """Published and waiting for the broker's PUBACK."""
        return notice_id in self._in_flight

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _round(self) -> float | None:
        """Mark what the broker confirmed, send what is owed; go on at once while there is more to send."""
        await self._mark_confirmed()
        if not self._is_leader():
            return None
        sent = await self._send_pending()
        return 0 if sent else None

    async def _mark_confirmed(self) -> None:
        confirmed, self._confirmed = self._confirmed, []
        if not confirmed:
            return
        try:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(DeviceNotice).where(DeviceNotice.id.in_(confirmed)).values(sent_at=utcnow())
                )
        except BaseException:
            self._confirmed.extend(confirmed)
            raise
        self._in_flight.difference_update(confirmed)
        metrics.NOTICES_SENT.inc(len(confirmed))

    def _on_puback(self, notice: DeviceNotice, fut: asyncio.Future[list[object]]) -> None:
        """Every broker it went to confirmed it (``fut``: gather of the PUBACK futures, exceptions as results)."""
        errors = ["cancelled"] if fut.cancelled() else [str(r) for r in fut.result() if isinstance(r, BaseException)]
        if errors:
            self._in_flight.discard(notice.id)  # dropped before its PUBACK: the next round sends it again
            metrics.NOTICE_FAILURES.inc()
            log.warning(
                "device notice not confirmed, will resend",
                device_id=notice.device_id,
                alarm_id=notice.alarm_id,
                error=errors[0],
            )
        else:
            self._confirmed.append(notice.id)
            log.info("device told", device_id=notice.device_id, alarm_id=notice.alarm_id, status=notice.status)
        self._wake.set()

    async def _send_pending(self) -> int:
        # At most MAX_IN_FLIGHT awaiting their PUBACK (a paused broker must not pull the whole table into memory).
        connected = [c for c in self._connections if c.is_connected]
        if not connected or len(self._in_flight) >= MAX_IN_FLIGHT:
            return 0
        room = min(200, MAX_IN_FLIGHT - len(self._in_flight))
        query = select(DeviceNotice).where(DeviceNotice.sent_at.is_(None)).order_by(DeviceNotice.id).limit(room)
        if self._in_flight:
            query = query.where(DeviceNotice.id.not_in(self._in_flight))
        async with self._sessions() as session:
            notices = (await session.scalars(query)).all()
        sent = 0
        for notice in notices:
            ack = AlarmAck(alarm_id=notice.alarm_id, status=AckStatus(notice.status))
            topic = self._topics.device(notice.device_id, DeviceTopic.ALARM_ACK)
            body = ack.model_dump_json(exclude_none=True).encode()
            try:
                futs = [connection.publish_confirmed(topic, body) for connection in connected]
            except Exception as exc:  # not marked in flight: sent again (on every broker) by the next round
                metrics.NOTICE_FAILURES.inc()
                log.error("device notice publish failed", device_id=notice.device_id, error=str(exc))
                break
            self._in_flight.add(notice.id)
            every = asyncio.gather(*futs, return_exceptions=True)
            every.add_done_callback(functools.partial(self._on_puback, notice))
            sent += 1
        return sent
