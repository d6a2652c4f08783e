"""The receiver's long-lived parts: store, live feed, escalation, device notices and its MQTT client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from alarm_receiver.db import migrate
from alarm_receiver.escalation import Escalator
from alarm_receiver.live import LiveFeed
from alarm_receiver.logins import Logins
from alarm_receiver.models import QueueAlarm
from alarm_receiver.notifier import DeviceNotifier
from alarm_receiver.schemas import AlarmOut
from devices import Topics
from trygg import mqtt
from trygg.db import create_engine, session_factory
from trygg.http import client_tls
from trygg.secrets import check_service_secrets
from trygg.settings import Settings

log = structlog.get_logger(__name__)


class Receiver:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        check_service_secrets(settings, "receiver")  # before anything starts: no default or short secret
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine or create_engine(settings.receiver_database_url)
        self.sessions = session_factory(self.engine)
        self.live = LiveFeed()
        self.notice_wake = asyncio.Event()
        self.puback = mqtt.PubackTracker()  # notices are marked sent on the broker's PUBACK
        self.client: Any = mqtt.make_client(settings.receiver_client_id, persistent=False, tracker=self.puback)
        self.notifier = DeviceNotifier(
            self.sessions, self.client, self.puback, Topics(settings.topic_root), self.notice_wake
        )
        self.escalator = Escalator(
            self.sessions,
            first_after_s=settings.escalate_first_s,
            second_after_s=settings.escalate_second_s,
            on_change=self.publish_alarm,
        )
        self.logins = Logins(self.sessions, settings)  # argon2 off the event loop, failed logins throttled
        self._connect_task: asyncio.Task[None] | None = None
        self.gateway_http = httpx.AsyncClient(
            timeout=15.0, verify=client_tls(settings)
        )  # the console's calls to the gateway

    async def start(self, *, run_migrations: bool = True) -> None:
        if run_migrations:
            await migrate(self.engine)
        self.escalator.start()
        self.notifier.start()
        self._connect_task = asyncio.create_task(self._connect(), name="receiver-mqtt-connect")
        log.info("receiver started")

    async def _connect(self) -> None:
        s = self.settings
        endpoint = mqtt.MqttEndpoint.from_url(
            s.mqtt_url,
            s.receiver_mqtt_username,
            s.receiver_mqtt_password.get_secret_value() if s.receiver_mqtt_password else None,
            ca_file=s.mqtt_ca_file,
        )
        delay = 0.5
        while True:
            try:
                await mqtt.connect(self.client, endpoint, protocol=self.settings.mqtt_protocol)
                log.info("receiver connected to broker", broker=f"{endpoint.host}:{endpoint.port}")
                self.notice_wake.set()
                return
            except Exception as exc:
                log.warning("receiver cannot reach broker; retrying", error=str(exc) or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def stop(self) -> None:
        self.live.close()
        if self._connect_task:
            self._connect_task.cancel()
            await asyncio.gather(self._connect_task, return_exceptions=True)
        await self.escalator.stop()
        await self.notifier.stop()
        if mqtt.is_connected(self.client):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(), 5)
        await self.gateway_http.aclose()
        self.logins.close()
        if self._own_engine:
            await self.engine.dispose()
        log.info("receiver stopped")

    def publish_alarm(self, alarm: QueueAlarm) -> None:
        self.live.publish("alarm", AlarmOut.model_validate(alarm).model_dump(mode="json"))

    async def publish_alarms(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        async with self.sessions() as session:
            for alarm in await session.scalars(select(QueueAlarm).where(QueueAlarm.id.in_(ids))):
                self.publish_alarm(alarm)
