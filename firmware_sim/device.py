"""One simulated social-alarm device: a real MQTT client that behaves like alarm firmware.

What it does (docs/simulator.md has the prose):

- connects with a persistent session (client id = device id) and a retained ``offline`` will, publishes a
  retained ``online`` on every connect and subscribes QoS 1 to its own ``alarm/ack`` topic;
- a press writes the AlarmMessage to a durable outbox first, then publishes it QoS 1; the entry stays until
  the gateway answers ``stored`` (``rejected`` also ends it, logged as an error: never resent);
- unconfirmed entries are resent with a backoff between ``sim_resend_min_s`` and ``sim_resend_max_s``
  (doubling, with jitter), with a warning each time; after ``sim_fallback_after_s`` without ``stored`` the
  device switches to the fallback broker when one is configured, and back again if that one does not answer
  either: it never gives up;
- heartbeats (QoS 0) every ``heartbeat_interval_s``; it subscribes to its retained ``config`` topic, applies
  ``heartbeat_interval_s`` (re-scheduling the heartbeat loop, one heartbeat at once) and reports the applied
  ``version`` as ``config_version`` in every heartbeat;
- the battery drains at ``battery_drain_pct_per_h`` (not while a mains-powered device has mains);
  ``lose_mains()`` / ``restore_mains()`` switch mains (and report it in a heartbeat at once);
- faults: ``go_silent(drop_connection)`` stops heartbeats and alarms, keeping the connection or dropping it
  without a DISCONNECT (the broker then publishes the retained ``offline`` will); ``come_back()`` undoes it;
- ``announce=False`` (``trygg sim press`` standalone): a one-shot connection, no will, no status, no heartbeats,
  a clean DISCONNECT, so the device's supervision is not touched (no ``device_offline`` follows the press).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from typing import Any

import structlog
from pydantic import ValidationError

from devices import (
    DEFAULT_PRIORITY,
    AckStatus,
    AckSubject,
    AlarmAck,
    AlarmCancel,
    AlarmMessage,
    AlarmType,
    DeviceConfig,
    DeviceStatus,
    DeviceTopic,
    DeviceType,
    Heartbeat,
    Topics,
)
from devices.messages import utcnow
from firmware_sim.catalog import BATTERY_ONLY, DEFAULT_ALARM_TYPE, FIRMWARE, Resend, new_alarm_id
from firmware_sim.credentials import device_endpoint
from firmware_sim.outbox import EntryKind, Outbox, OutboxEntry
from trygg.mqtt import Will, connect, is_connected, make_client
from trygg.settings import Settings

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 5.0
RECONNECT_MAX_S = 10.0
START_WAIT_S = 10.0
IDLE_TICK_S = 1.0


class SimDevice:
    """A simulated device: ``start()`` connects and resends the outbox, ``press()`` raises an alarm."""

    def __init__(
        self,
        device_id: str,
        device_type: DeviceType,
        settings: Settings,
        *,
        mqtt_url: str | None = None,
        fallback_url: str | None = None,
        heartbeat_interval_s: float = 60.0,
        battery_pct: int | None = None,
        battery_drain_pct_per_h: float = 0.5,
        announce: bool = True,
    ) -> None:
        self.device_id = device_id
        self.announce = announce  # False: a one-shot connection (no will, status or heartbeats)
        self.device_type = DeviceType(device_type)
        self.settings = settings
        self.primary_url = mqtt_url or settings.mqtt_url
        self.fallback_url = fallback_url or settings.sim_fallback_mqtt_url
        self.heartbeat_interval_s = heartbeat_interval_s
        self._battery = float(battery_pct if battery_pct is not None else random.randint(60, 100))
        self._battery_at = time.monotonic()
        self.battery_drain_pct_per_h = battery_drain_pct_per_h
        self.has_mains = self.device_type not in BATTERY_ONLY  # mains-powered with a backup battery
        self.mains = self.has_mains
        self.config_version: int | None = None  # the DeviceConfig version applied
        self.silent = False
        self.dropped = False  # went silent by dropping the connection (the will fired)
        self.heartbeats_sent = 0
        self.last_heartbeat_at: float | None = None  # time.time() of the last heartbeat published

        self.topics = Topics(settings.topic_root)
        self.status_topic = self.topics.device(device_id, DeviceTopic.STATUS)
        self.ack_topic = self.topics.device(device_id, DeviceTopic.ALARM_ACK)
        self.config_topic = self.topics.device(device_id, DeviceTopic.CONFIG)
        self.outbox = Outbox(settings.sim_outbox_dir, device_id)

        # Observability: every ack received, the statuses per alarm id, alarms an operator took.
        self.acks: list[AlarmAck] = []
        self.statuses: dict[str, list[AckStatus]] = {}
        self.help_coming: set[str] = set()
        self.url = self.primary_url  # the broker in use now
        self.path_switches = 0

        self._log = log.bind(device_id=device_id)
        self._cond = asyncio.Condition()
        self._wake = asyncio.Event()
        self._hb_wake = asyncio.Event()
        self._hb_missed = False  # the last heartbeat could not be published: send one on (re)connect
        self._connected = asyncio.Event()
        self._client: Any = None
        self._subscribed: set[int] = set()  # ids of clients that subscribed once (re-subscribe on reconnect)
        self._schedule: dict[tuple[EntryKind, str], Resend] = {}
        self._path_since = time.time()
        self._conn_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load the outbox, connect (waiting up to 10 s; it keeps trying after that) and start the loops."""
        if self._running:
            return
        self._running = True
        loaded = self.outbox.load()
        if loaded:
            self._log.warning("outbox.loaded", unconfirmed=[e.alarm_id for e in loaded])
        self._path_since = time.time()
        self.url = self.primary_url
        self._conn_task = asyncio.create_task(self._connect_forever(self.url))
        self._tasks = [asyncio.create_task(self._resend_loop())]
        if self.announce:
            self._tasks.append(asyncio.create_task(self._heartbeat_loop()))
        try:
            async with asyncio.timeout(START_WAIT_S):
                await self._connected.wait()
        except TimeoutError:
            self._log.warning("device.start_not_connected", url=self.url)

    async def stop(self) -> None:
        """Graceful power-off: publish retained ``offline`` and disconnect. The outbox stays on disk."""
        if not self._running:
            return
        self._running = False
        tasks = [*self._tasks, *([self._conn_task] if self._conn_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        self._conn_task = None
        client, self._client = self._client, None
        self._connected.clear()
        if client is not None:
            await self._close_client(client)
        self._log.info("device.stopped", unconfirmed=self.pending())

    async def __aenter__(self) -> SimDevice:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connected(self) -> bool:
        return self._client is not None and is_connected(self._client)

    async def wait_connected(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    # ------------------------------------------------------------------ battery, mains, faults

    @property
    def battery_pct(self) -> int:
        """The battery level now (drains with time unless the device runs on mains)."""
        now = time.monotonic()
        if not self.mains and self.battery_drain_pct_per_h > 0:
            self._battery = max(0.0, self._battery - self.battery_drain_pct_per_h * (now - self._battery_at) / 3600)
        self._battery_at = now
        return round(self._battery)

    @battery_pct.setter
    def battery_pct(self, value: int) -> None:
        self._battery, self._battery_at = float(value), time.monotonic()

    def lose_mains(self) -> None:
        """Mains power lost: the backup battery drains from now on; reported in a heartbeat at once."""
        _ = self.battery_pct  # settle the level up to now
        if self.has_mains and self.mains:
            self.mains = False
            self._log.warning("device.mains_lost")
            self._hb_wake.set()

    def restore_mains(self) -> None:
        _ = self.battery_pct
        if self.has_mains and not self.mains:
            self.mains = True
            self._log.info("device.mains_restored")
            self._hb_wake.set()

    async def go_silent(self, drop_connection: bool = False) -> None:
        """Stop heartbeats and alarms without a clean power-off.

        ``drop_connection=False`` keeps the MQTT connection open (only the deadline can tell); ``True`` aborts
        the TCP connection without DISCONNECT and stops reconnecting, so the broker publishes the will.
        """
        self.silent = True
        self._log.warning("device.silent", drop_connection=drop_connection)
        if not drop_connection or self.dropped:
            return
        self.dropped = True
        if self._conn_task is not None and not self._conn_task.done():
            self._conn_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._conn_task
        self._conn_task = None
        client, self._client = self._client, None
        self._connected.clear()
        if client is not None:
            self._subscribed.discard(id(client))
            client._is_active = False  # gmqtt: no reconnect after the connection is lost
            connection = getattr(client, "_connection", None)
            transport = getattr(connection, "_transport", None)
            if transport is not None:
                transport.abort()  # no DISCONNECT: the broker sends the last will

    async def come_back(self) -> None:
        """Undo ``go_silent``: reconnect if the connection was dropped, heartbeat at once."""
        if not self.silent:
            return
        self.silent = False
        self._log.info("device.back")
        if self.dropped:
            self.dropped = False
            if self._running:
                self._conn_task = asyncio.create_task(self._connect_forever(self.url))
        self._hb_wake.set()
        self._wake.set()

    async def wait_config(self, version: int, timeout_s: float) -> None:
        """Return once config ``version`` (or newer) is applied; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._cond:
            await self._cond.wait_for(lambda: (self.config_version or 0) >= version)

    async def wait_heartbeats(self, count: int, timeout_s: float) -> None:
        """Return once ``count`` heartbeats were published in total."""
        async with asyncio.timeout(timeout_s), self._cond:
            await self._cond.wait_for(lambda: self.heartbeats_sent >= count)

    # ------------------------------------------------------------------ buttons

    async def press(self, alarm_type: AlarmType | str | None = None, text: str | None = None) -> str:
        """Raise an alarm; returns its alarm id. Durable in the outbox before it is published."""
        kind = DEFAULT_ALARM_TYPE[self.device_type] if alarm_type is None else AlarmType(alarm_type)
        alarm_id = new_alarm_id()
        while alarm_id in self.statuses or self.outbox.get(EntryKind.ALARM, alarm_id) is not None:
            alarm_id = new_alarm_id()
        message = AlarmMessage(
            alarm_id=alarm_id,
            type=kind,
            ts=utcnow(),
            priority=DEFAULT_PRIORITY.get(kind, 5),
            device_id=self.device_id,
            battery_pct=self.battery_pct,
            text=text,
        )
        entry = OutboxEntry(
            kind=EntryKind.ALARM,
            alarm_id=alarm_id,
            payload=message.model_dump_json(exclude_none=True),
            created_at=time.time(),
        )
        self.outbox.add(entry)
        self.statuses.setdefault(alarm_id, [])
        self._log.info("alarm.pressed", alarm_id=alarm_id, type=kind.value)
        self._send_now(entry)
        return alarm_id

    async def cancel(self, alarm_id: str) -> None:
        """Cancel a false press (same alarm id); kept in the outbox until the ack ``cancelled``."""
        message = AlarmCancel(alarm_id=alarm_id, ts=utcnow(), device_id=self.device_id)
        entry = OutboxEntry(
            kind=EntryKind.CANCEL,
            alarm_id=alarm_id,
            payload=message.model_dump_json(exclude_none=True),
            created_at=time.time(),
        )
        self.outbox.add(entry)
        self._log.info("alarm.cancel_requested", alarm_id=alarm_id)
        self._send_now(entry)

    # ------------------------------------------------------------------ observability

    def pending(self) -> list[str]:
        """Alarm ids with an alarm or a cancel still in the outbox."""
        return self.outbox.alarm_ids()

    async def wait_for_status(self, alarm_id: str, status: AckStatus | str, timeout: float) -> None:
        """Return once ``status`` was received for ``alarm_id``; ``TimeoutError`` after ``timeout`` s."""
        wanted = AckStatus(status)
        async with asyncio.timeout(timeout), self._cond:
            await self._cond.wait_for(lambda: wanted in self.statuses.get(alarm_id, ()))

    # ------------------------------------------------------------------ sending

    def _topic_for(self, entry: OutboxEntry) -> str:
        kind = DeviceTopic.ALARM if entry.kind is EntryKind.ALARM else DeviceTopic.ALARM_CANCEL
        return self.topics.device(self.device_id, kind)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        client = self._client
        if client is None or not is_connected(client) or self.silent:
            return False
        try:
            client.publish(topic, payload, qos=qos, retain=retain)
        except Exception as exc:  # the transport may close under us; the resend loop tries again
            self._log.warning("mqtt.publish_failed", topic=topic, error=repr(exc))
            return False
        return True

    def _send_now(self, entry: OutboxEntry) -> None:
        """Publish an entry once and schedule its next resend at the minimum delay."""
        now = asyncio.get_running_loop().time()
        if self._publish(self._topic_for(entry), entry.payload.encode(), qos=1):
            self.outbox.mark_sent(entry.kind, entry.alarm_id)
        else:
            self._log.warning("alarm.queued_offline", alarm_id=entry.alarm_id, kind=entry.kind.value)
        self._schedule[entry.key] = Resend(
            next_at=now + self._jitter(self.settings.sim_resend_min_s),
            delay=min(self.settings.sim_resend_min_s * 2, self.settings.sim_resend_max_s),
        )
        self._wake.set()

    def _jitter(self, base: float) -> float:
        low, high = self.settings.sim_resend_min_s, self.settings.sim_resend_max_s
        return max(low, min(high, base * random.uniform(0.8, 1.2)))

    async def _resend_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            await self._maybe_switch_path()
            now = loop.time()
            entries = self.outbox.entries()
            live = {entry.key for entry in entries}
            for key in [k for k in self._schedule if k not in live]:
                del self._schedule[key]
            for entry in entries:
                backoff = self._schedule.setdefault(
                    entry.key, Resend(next_at=now, delay=self.settings.sim_resend_min_s)
                )
                if backoff.next_at > now:
                    continue
                self._resend(entry)
                backoff.next_at = now + self._jitter(backoff.delay)
                backoff.delay = min(backoff.delay * 2, self.settings.sim_resend_max_s)
            wait = IDLE_TICK_S
            if self._schedule:
                wait = min(wait, max(0.01, min(b.next_at for b in self._schedule.values()) - loop.time()))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel (stop() would hang).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _resend(self, entry: OutboxEntry) -> None:
        age = round(time.time() - entry.created_at, 1)
        sent = self._publish(self._topic_for(entry), entry.payload.encode(), qos=1)
        if sent:
            updated = self.outbox.mark_sent(entry.kind, entry.alarm_id)
            attempts = updated.attempts if updated else entry.attempts
        else:
            attempts = entry.attempts
        if entry.attempts > 0 or not sent:
            self._log.warning(
                "alarm.unconfirmed",
                alarm_id=entry.alarm_id,
                kind=entry.kind.value,
                attempts=attempts,
                age_s=age,
                url=self.url,
                resent=sent,
            )
        else:
            self._log.info("alarm.sent_from_outbox", alarm_id=entry.alarm_id, kind=entry.kind.value)

    # ------------------------------------------------------------------ acks

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        if topic == self.config_topic:
            await self._apply_config(payload)
            return 0
        if topic != self.ack_topic:
            return 0
        try:
            ack = AlarmAck.model_validate_json(payload)
        except ValidationError as exc:
            self._log.error("ack.invalid", payload=payload[:200].decode(errors="replace"), error=str(exc))
            return 0
        self._apply_ack(ack)  # on disk before we return and gmqtt sends the PUBACK
        async with self._cond:
            self._cond.notify_all()
        return 0

    def _apply_ack(self, ack: AlarmAck) -> None:
        self.acks.append(ack)
        self.statuses.setdefault(ack.alarm_id, []).append(ack.status)
        alarm_id = ack.alarm_id
        if ack.status is AckStatus.STORED:
            if self.outbox.remove(EntryKind.ALARM, alarm_id) is not None:
                self._log.info("alarm.stored", alarm_id=alarm_id)
        elif ack.status is AckStatus.CANCELLED:
            # The gateway holds the cancel durably, so it knows the alarm id: nothing left to resend.
            self.outbox.remove(EntryKind.CANCEL, alarm_id)
            self.outbox.remove(EntryKind.ALARM, alarm_id)
            self._log.info("alarm.cancelled", alarm_id=alarm_id)
        elif ack.status is AckStatus.REJECTED:
            # Never resend what was rejected. A rejected alarm makes a pending cancel of it moot; a rejected
            # cancel leaves the alarm itself pending (it may simply not have been stored yet).
            self.outbox.remove(EntryKind.CANCEL, alarm_id)
            if ack.subject is AckSubject.ALARM:
                self.outbox.remove(EntryKind.ALARM, alarm_id)
            self._log.error(
                "alarm.rejected", alarm_id=alarm_id, subject=ack.subject.value, code=ack.code, reason=ack.reason
            )
        elif ack.status is AckStatus.ACKNOWLEDGED:
            self.help_coming.add(alarm_id)
            self._log.info("alarm.help_coming", alarm_id=alarm_id)

    async def _apply_config(self, payload: bytes) -> None:
        """A retained DeviceConfig: apply the heartbeat interval and report the version from now on."""
        if not payload:  # a cleared retained config
            return
        try:
            config = DeviceConfig.model_validate_json(payload)
        except ValidationError as exc:
            self._log.error("config.invalid", payload=payload[:200].decode(errors="replace"), error=str(exc))
            return
        if config.version == self.config_version:
            return
        self.heartbeat_interval_s = float(config.heartbeat_interval_s)
        self.config_version = config.version
        self._log.info("config.applied", version=config.version, heartbeat_interval_s=config.heartbeat_interval_s)
        self._hb_wake.set()  # heartbeat at once (reports the version) and re-schedule on the new interval
        async with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ heartbeats

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(
            ts=utcnow(),
            battery_pct=self.battery_pct,
            has_mains=self.has_mains,
            mains=self.mains if self.has_mains else None,  # a battery-only device says it has no mains
            firmware=FIRMWARE,
            network="ethernet" if self.has_mains else "lte-m",
            config_version=self.config_version,
        )

    async def _heartbeat_loop(self) -> None:
        topic = self.topics.device(self.device_id, DeviceTopic.HEARTBEAT)
        await self._connected.wait()
        while True:
            self._hb_wake.clear()
            self._hb_missed = not self._publish(topic, self.heartbeat().model_dump_json(exclude_none=True).encode(), 0)
            if not self._hb_missed:
                self.heartbeats_sent += 1
                self.last_heartbeat_at = time.time()
                async with self._cond:
                    self._cond.notify_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_interval_s):
                    await self._hb_wake.wait()

    # ------------------------------------------------------------------ connection and fallback

    def _new_client(self) -> Any:
        client = make_client(
            client_id=self.device_id,
            persistent=True,
            session_expiry_s=3600,
            on_message=self._on_message,
            will=Will(self.status_topic, DeviceStatus.OFFLINE.value.encode(), retain=True) if self.announce else None,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        try:
            if self.announce:
                client.publish(self.status_topic, DeviceStatus.ONLINE.value.encode(), qos=1, retain=True)
            if id(client) in self._subscribed:  # a reconnect by gmqtt: subscribe again
                client.subscribe(self.ack_topic, qos=1)
                client.subscribe(self.config_topic, qos=1)
        except Exception as exc:
            self._log.warning("mqtt.on_connect_failed", error=repr(exc))
        if client is self._client:
            self._connected.set()
            self._resend_all_now()
            if self._hb_missed:
                self._hb_wake.set()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if client is self._client:
            self._connected.clear()
            self._log.warning("mqtt.disconnected", url=self.url)

    def _resend_all_now(self) -> None:
        for backoff in self._schedule.values():
            backoff.next_at = 0.0
        self._wake.set()

    async def _connect_forever(self, url: str) -> None:
        """Connect to ``url`` (new client each attempt) until it works; gmqtt reconnects by itself after."""
        endpoint = device_endpoint(self.settings, url, self.device_id)
        delay = 0.5
        while True:
            client = self._new_client()
            try:
                await connect(client, endpoint, timeout_s=CONNECT_TIMEOUT_S, protocol=self.settings.mqtt_protocol)
            except asyncio.CancelledError:
                await self._close_client(client, say_offline=False)
                raise
            except Exception as exc:
                self._log.warning("mqtt.connect_failed", url=url, error=repr(exc), retry_in_s=delay)
                await self._close_client(client, say_offline=False)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            client.subscribe(self.ack_topic, qos=1)
            client.subscribe(self.config_topic, qos=1)
            self._subscribed.add(id(client))
            self._client = client
            self._connected.set()
            self._log.info("mqtt.connected", url=url)
            self._resend_all_now()
            if self._hb_missed:
                self._hb_wake.set()
            return

    async def _close_client(self, client: Any, *, say_offline: bool = True) -> None:
        self._subscribed.discard(id(client))
        with contextlib.suppress(Exception):
            if say_offline and self.announce and is_connected(client):
                client.publish(self.status_topic, DeviceStatus.OFFLINE.value.encode(), qos=1, retain=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2.0)

    def _overdue(self, entries: Iterable[OutboxEntry], now: float) -> bool:
        after = self.settings.sim_fallback_after_s
        return any(now - max(entry.created_at, self._path_since) >= after for entry in entries)

    async def _maybe_switch_path(self) -> None:
        """Switch broker when an entry waited ``sim_fallback_after_s`` on this path without confirmation.

        On the fallback with nothing left to confirm, go home to the primary after the same time.
        """
        if not self.fallback_url or self.fallback_url == self.primary_url:
            return
        now = time.time()
        entries = self.outbox.entries()
        on_fallback = self.url == self.fallback_url
        if entries and self._overdue(entries, now):
            target = self.primary_url if on_fallback else self.fallback_url
            reason = "unconfirmed"
        elif not entries and on_fallback and now - self._path_since >= self.settings.sim_fallback_after_s:
            target, reason = self.primary_url, "back_home"
        else:
            return
        await self._switch_to(target, reason)

    async def _switch_to(self, url: str, reason: str) -> None:
        self._log.warning("path.switch", from_url=self.url, to_url=url, reason=reason, unconfirmed=self.pending())
        self.path_switches += 1
        self.url = url
        self._path_since = time.time()
        if self._conn_task is not None and not self._conn_task.done():
            self._conn_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._conn_task
        client, self._client = self._client, None
        self._connected.clear()
        if client is not None:
            await self._close_client(client)
        self._conn_task = asyncio.create_task(self._connect_forever(url))
