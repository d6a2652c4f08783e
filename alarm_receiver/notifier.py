"""Publishes notices owed to devices (``acknowledged``: help is coming) from the notice outbox.

A notice is marked sent once handed to a connected MQTT client; gmqtt keeps QoS 1 messages until their
PUBACK and resends them after a reconnect. While the broker is unreachable the notices wait in the table.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alarm_receiver import metrics
from alarm_receiver.models import DeviceNotice
from devices import AckStatus, AlarmAck, DeviceTopic, Topics
from trygg import mqtt
from trygg.db import utcnow

log = structlog.get_logger(__name__)


class DeviceNotifier:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], client: Any, topics: Topics, wake: asyncio.Event
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._topics = topics
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="device-notifier")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self._send_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("device notice round failed", error=str(exc))
                sent = 0
            if sent == 0:
                try:
                    async with asyncio.timeout(2.0):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def _send_pending(self) -> int:
        if not mqtt.is_connected(self._client):
            return 0
        async with self._sessions() as session:
            notices = (
                await session.scalars(
                    select(DeviceNotice).where(DeviceNotice.sent_at.is_(None)).order_by(DeviceNotice.id).limit(200)
                )
            ).all()
        sent_ids: list[int] = []
        for notice in notices:
            ack = AlarmAck(alarm_id=notice.alarm_id, status=AckStatus(notice.status))
            topic = self._topics.device(notice.device_id, DeviceTopic.ALARM_ACK)
            try:
                self._client.publish(topic, ack.model_dump_json(exclude_none=True).encode(), qos=1)
            except Exception as exc:
                metrics.NOTICE_FAILURES.inc()
                log.error("device notice publish failed", device_id=notice.device_id, error=str(exc))
                break
            sent_ids.append(notice.id)
            log.info("device told", device_id=notice.device_id, alarm_id=notice.alarm_id, status=notice.status)
        if sent_ids:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(DeviceNotice).where(DeviceNotice.id.in_(sent_ids)).values(sent_at=utcnow())
                )
            metrics.NOTICES_SENT.inc(len(sent_ids))
        return len(sent_ids)
