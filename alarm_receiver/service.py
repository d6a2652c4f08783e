"""The receiver's long-lived parts: store, live feed, escalation, device notices and its MQTT client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from alarm_receiver.clients.models import Client
from alarm_receiver.db import migrate
from alarm_receiver.escalation import Escalator
from alarm_receiver.fanout import LiveFanout
from alarm_receiver.health import StoreHealth
from alarm_receiver.live import LiveFeed
from alarm_receiver.logins import Logins
from alarm_receiver.models import QueueAlarm
from alarm_receiver.notifier import DeviceNotifier
from alarm_receiver.schemas import AlarmOut
from devices import Topics
from trygg import mqtt
from trygg.audit.anchor import load_signing_key
from trygg.db import create_engine, session_factory
from trygg.http import client_tls
from trygg.leader import Leadership
from trygg.loops import Backoff, retry_until_done
from trygg.secrets import check_service_secrets
from trygg.settings import Settings

log = structlog.get_logger(__name__)


AlarmMessage = tuple[dict[str, Any], str]
"""An alarm as the live feed sends it: as a dict (the feed filters on it) and as JSON text."""


def alarm_message(alarm: QueueAlarm) -> AlarmMessage:
    return _encoded(AlarmOut.model_validate(alarm))


def _encoded(out: AlarmOut) -> AlarmMessage:
    return out.model_dump(mode="json"), out.model_dump_json()  # both from pydantic's core


_QUEUE = cast(Table, QueueAlarm.__table__)
_CLIENTS = cast(Table, Client.__table__)
# The live feed's view of changed items, built once: the item's columns and its client's name and address by a join
# (a Core row, not an ORM object and a second SELECT for the client: an intake batch publishes hundreds of items).
_MESSAGES = (
    select(
        *(c for c in _QUEUE.c if c.name in AlarmOut.model_fields),
        _CLIENTS.c.id.label("client_found"),
        _CLIENTS.c.name.label("client_name"),
        _CLIENTS.c.street.label("client_street"),
        _CLIENTS.c.town.label("client_town"),
    )
    .select_from(_QUEUE.outerjoin(_CLIENTS, _QUEUE.c.client_id == _CLIENTS.c.id))
    .where(_QUEUE.c.id.in_(bindparam("ids", expanding=True)))
)


async def alarm_messages(session: AsyncSession, ids: Sequence[int]) -> list[AlarmMessage]:
    """The live feed's messages for these alarms, read in the caller's session: the intake reads them in its own
    transaction before its commit (what the commit makes true; no second session per request) and publishes them
    with :meth:`Receiver.publish_messages` once committed. The same messages as :class:`AlarmOut` of the ORM object
    (``client_address`` is ``Client.short_address``)."""
    if not ids:
        return []
    await session.flush()
    rows = await (await session.connection()).execute(_MESSAGES, {"ids": list(ids)})
    messages = []
    for row in rows.mappings():
        values = dict(row)
        found, street, town = values.pop("client_found"), values.pop("client_street"), values.pop("client_town")
        values["client_address"] = ", ".join(p for p in (street, town) if p) if found is not None else None
        messages.append(_encoded(AlarmOut.model_validate(values)))
    return messages


class Receiver:
    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        check_service_secrets(settings, "receiver")  # before anything starts: no default or short secret
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine or create_engine(settings.receiver_database_url)
        self.sessions = session_factory(self.engine)
        self.live = LiveFeed()
        # Several receivers on one PostgreSQL database: one leader escalates and tells devices; every change
        # reaches the live feeds of all of them (alarm_receiver/fanout.py). On SQLite: one receiver, always leader.
        self.leadership = Leadership(
            self.engine,
            "trygg.receiver.leader",
            instance=settings.instance_name,
            check_s=settings.leader_check_s,
            ttl_s=settings.leader_ttl_s,
        )
        self.fanout = LiveFanout(self.engine, on_alarms=self._publish_remote, on_end_session=self.live.end_session)
        self.notice_wake = asyncio.Event()
        self.puback = mqtt.PubackTracker()  # notices are marked sent on the broker's PUBACK
        client_id = (
            f"{settings.receiver_client_id}-{settings.instance_name}"
            if settings.instance_name
            else settings.receiver_client_id
        )
        self.client = self._connection(settings.mqtt_url, client_id, self.puback)
        # A second, independent broker (devices fail over to it): notices go out on both (alarm_receiver/notifier.py)
        self.second_client: mqtt.MqttConnection | None = None
        if settings.mqtt_second_url:
            self.second_client = self._connection(settings.mqtt_second_url, f"{client_id}-b2", mqtt.PubackTracker())
        self.clients = [c for c in (self.client, self.second_client) if c is not None]
        self.notifier = DeviceNotifier(
            self.sessions,
            self.clients,
            Topics(settings.topic_root),
            self.notice_wake,
            is_leader=lambda: self.leadership.is_leader,
        )
        self.escalator = Escalator(
            self.sessions,
            first_after_s=settings.escalate_first_s,
            second_after_s=settings.escalate_second_s,
            on_change=self.publish_alarm,
            is_leader=lambda: self.leadership.is_leader,
        )
        self.store_health = StoreHealth(
            self.sessions, probe_after_s=settings.health_store_probe_s, timeout_s=settings.health_store_timeout_s
        )
        self.logins = Logins(self.sessions, settings)  # argon2 off the event loop, failed logins throttled
        self._connect_tasks: list[asyncio.Task[None]] = []
        # signs unlock grants for digital locks (issue 10); None: the receiver issues none
        key_file = settings.lock_grant_signing_key_file
        self.grant_key: Ed25519PrivateKey | None = load_signing_key(key_file) if key_file is not None else None
        self.gateway_http = httpx.AsyncClient(
            timeout=15.0, verify=client_tls(settings)
        )  # the console's calls to the gateway

    def _connection(self, url: str, client_id: str, tracker: mqtt.PubackTracker) -> mqtt.MqttConnection:
        s = self.settings
        endpoint = mqtt.MqttEndpoint.from_url(
            url,
            s.receiver_mqtt_username,
            s.receiver_mqtt_password.get_secret_value() if s.receiver_mqtt_password else None,
            ca_file=s.mqtt_ca_file,
        )
        return mqtt.MqttConnection(
            client_id,
            endpoint,
            persistent=False,
            protocol=s.mqtt_protocol,
            tracker=tracker,
            on_connect=lambda _session_present: self.notice_wake.set(),  # owed notices go out at once
        )

    async def start(self, *, run_migrations: bool = True) -> None:
        if run_migrations:
            await migrate(self.engine)
        await self.leadership.start()
        self.fanout.start()
        self.escalator.start()
        self.notifier.start()
        self._connect_tasks = [
            asyncio.create_task(self._connect(client), name=f"receiver-mqtt-connect-{n}")
            for n, client in enumerate(self.clients, 1)
        ]
        log.info("receiver started")

    async def _connect(self, client: mqtt.MqttConnection) -> None:
        """The first connection (gmqtt reconnects by itself afterwards): tried until the broker answers (each
        broker on its own: one down does not hold up the other)."""
        endpoint = client.endpoint
        await retry_until_done(
            "receiver's connection to the broker", client.connect, backoff=Backoff(0.5, 10.0), log=log
        )
        log.info("receiver connected to broker", broker=f"{endpoint.host}:{endpoint.port}")
        self.notice_wake.set()

    async def stop(self) -> None:
        self.live.close()
        for task in self._connect_tasks:
            task.cancel()
        await asyncio.gather(*self._connect_tasks, return_exceptions=True)
        await self.escalator.stop()
        await self.notifier.stop()
        await self.fanout.stop()
        await self.leadership.stop()
        await self.store_health.close()
        for client in self.clients:
            if client.is_connected:
                await client.disconnect()
        await self.gateway_http.aclose()
        self.logins.close()
        if self._own_engine:
            await self.engine.dispose()
        log.info("receiver stopped")

    def publish_alarm(self, alarm: QueueAlarm) -> None:
        self._publish_one(alarm)
        self.fanout.alarms_changed([alarm.id])

    async def publish_alarms(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        await self._publish_local(ids)
        self.fanout.alarms_changed(ids)

    def end_session(self, session_key: str, code: str) -> None:
        """End a session's live feeds here and on every other receiver."""
        self.live.end_session(session_key, code)
        self.fanout.session_ended(session_key, code)

    async def _publish_local(self, ids: list[int]) -> None:
        async with self.sessions() as session:
            messages = await alarm_messages(session, ids)
        self.publish_messages(messages, ids, remote=False)

    def publish_messages(self, messages: list[AlarmMessage], ids: list[int], *, remote: bool = True) -> None:
        """Publish what :func:`alarm_messages` read (after the commit that made it true), here and, unless ``remote``
        is off, on the other receivers (they read the alarms themselves)."""
        for data, text in messages:
            self.live.publish("alarm", data, text)
        if remote:
            self.fanout.alarms_changed(ids)

    def _publish_one(self, alarm: QueueAlarm) -> None:
        self.live.publish("alarm", *alarm_message(alarm))

    async def _publish_remote(self, ids: list[int]) -> None:
        """Another receiver changed these alarms: show them here; an acknowledgement there may owe a notice."""
        await self._publish_local(ids)
        self.notice_wake.set()
