"""A simulated digital door lock (docs/contract.md, "Digital locks"): a real MQTT client.

- connects with a retained ``offline`` will on ``status``; on every connect publishes retained ``online`` and its
  ``lock/state``, and subscribes to its ``lock/command``; sends heartbeats like the other devices;
- on an ``unlock`` command it unlocks (``lock/state``: unlocked, with the command's id) and locks itself again
  ``relock_after_s`` after the door is closed (or after the unlock, when the door was never opened);
- the test (or the demo) opens and closes the door (:meth:`open_door`, :meth:`close_door`), jams the lock
  (:meth:`jam`) or turns it off (:meth:`stop`: the broker then publishes its will, ``offline``).

The lock does not check the grant itself (the gateway does before it publishes); ``commands`` records what came.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from pydantic import ValidationError

from devices import DeviceStatus, DeviceTopic, Heartbeat, Topics
from devices.lock import DoorPosition, LockCommand, LockPosition, LockState
from devices.messages import utcnow
from firmware_sim.credentials import device_endpoint
from trygg.mqtt import Will, connect, is_connected, make_client
from trygg.settings import Settings

log = structlog.get_logger(__name__)

FIRMWARE = "trygg-sim-lock/0.1"
START_WAIT_S = 10.0


class SimLock:
    def __init__(
        self, device_id: str, settings: Settings, *, battery_pct: int = 90, heartbeat_interval_s: float = 300
    ) -> None:
        self.device_id = device_id
        self.settings = settings
        topics = Topics(settings.topic_root)
        self.status_topic = topics.device(device_id, DeviceTopic.STATUS)
        self.state_topic = topics.device(device_id, DeviceTopic.LOCK_STATE)
        self.command_topic = topics.device(device_id, DeviceTopic.LOCK_COMMAND)
        self.heartbeat_topic = topics.device(device_id, DeviceTopic.HEARTBEAT)
        self.battery_pct = battery_pct
        self.heartbeat_interval_s = heartbeat_interval_s
        self.lock = LockPosition.LOCKED
        self.door = DoorPosition.CLOSED
        self.commands: list[LockCommand] = []
        self.unlocked = asyncio.Event()  # set at each unlock (tests clear it)
        self._relock_after_s = 30.0
        self._relock: asyncio.Task[None] | None = None
        self._client: Any = None
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = log.bind(device_id=device_id)

    async def start(self) -> None:
        endpoint = device_endpoint(self.settings, self.settings.mqtt_url, self.device_id)
        client = make_client(
            client_id=self.device_id,
            persistent=False,
            on_message=self._on_message,
            will=Will(self.status_topic, DeviceStatus.OFFLINE.value.encode(), retain=True),
        )
        client.on_connect = self._on_connect
        self._client = client
        await connect(client, endpoint, timeout_s=START_WAIT_S, protocol=self.settings.mqtt_protocol)
        self._connected.set()
        task = asyncio.create_task(self._heartbeats())
        self._tasks.add(task)

    async def stop(self, *, clean: bool = True) -> None:
        """Power off. ``clean``: say ``offline`` first; otherwise the connection just drops (the will says it)."""
        for task in [*self._tasks, *([self._relock] if self._relock else [])]:
            task.cancel()
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if clean and is_connected(client):
                client.publish(self.status_topic, DeviceStatus.OFFLINE.value.encode(), qos=1, retain=True)
            await asyncio.wait_for(client.disconnect(), 2.0)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        with contextlib.suppress(Exception):
            client.publish(self.status_topic, DeviceStatus.ONLINE.value.encode(), qos=1, retain=True)
            client.subscribe(self.command_topic, qos=1)
        self.publish_state()

    def publish_state(self, command_id: str | None = None) -> bool:
        client = self._client
        if client is None or not is_connected(client):
            return False
        state = LockState(
            ts=utcnow(), lock=self.lock, door=self.door, battery_pct=self.battery_pct, command_id=command_id
        )
        client.publish(self.state_topic, state.model_dump_json(exclude_none=True).encode(), qos=1, retain=True)
        return True

    async def _heartbeats(self) -> None:
        await self._connected.wait()
        while True:
            client = self._client
            if client is not None and is_connected(client):
                beat = Heartbeat(ts=utcnow(), mains=False, battery_pct=self.battery_pct, firmware=FIRMWARE)
                client.publish(self.heartbeat_topic, beat.model_dump_json(exclude_none=True).encode(), qos=0)
            await asyncio.sleep(self.heartbeat_interval_s)

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        if topic != self.command_topic:
            return 0
        try:
            command = LockCommand.model_validate_json(payload)
        except ValidationError:
            self._log.error("lock.command_invalid")
            return 0
        self.commands.append(command)
        if self.lock is LockPosition.JAMMED:
            self.publish_state(command.command_id)  # cannot move: says so again
            return 0
        self.lock = LockPosition.UNLOCKED
        self._relock_after_s = command.relock_after_s
        self.publish_state(command.command_id)
        self.unlocked.set()
        self._schedule_relock()
        return 0

    def _schedule_relock(self) -> None:
        if self._relock is not None:
            self._relock.cancel()
        self._relock = asyncio.create_task(self._relock_later())

    async def _relock_later(self) -> None:
        await asyncio.sleep(self._relock_after_s)
        if self.door is DoorPosition.CLOSED and self.lock is LockPosition.UNLOCKED:
            self.lock = LockPosition.LOCKED
            self.publish_state()

    # --- the world acting on the lock --------------------------------------------------------------------------
    def open_door(self) -> bool:
        """Someone opens the door (possible only when unlocked)."""
        if self.lock is not LockPosition.UNLOCKED:
            return False
        self.door = DoorPosition.OPEN
        if self._relock is not None:
            self._relock.cancel()
        return self.publish_state()

    def close_door(self) -> bool:
        self.door = DoorPosition.CLOSED
        self._schedule_relock()
        return self.publish_state()

    def jam(self) -> bool:
        self.lock = LockPosition.JAMMED
        return self.publish_state()
