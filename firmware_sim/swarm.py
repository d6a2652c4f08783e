"""A light-weight swarm: many simulated devices, one MQTT connection each, heartbeats only, in one process.

For fleets of tens of thousands. Each device is a tiny asyncio ``Protocol`` speaking MQTT 3.1.1 itself (no
gmqtt client, no outbox, no task per device: heartbeats are ``loop.call_at`` timers), which costs a few KB per
connection instead of gmqtt's ~20 KB. What a device does, as ``SimDevice`` does it:

- connects with client id = device id, a clean session and a retained ``offline`` will (QoS 1) on its
  ``status`` topic; publishes a retained ``online`` (QoS 1) and subscribes QoS 1 to its retained ``config``;
- a heartbeat (QoS 0) at once and then every ``heartbeat_interval_s``, carrying battery, mains and the applied
  ``config_version``; a ``DeviceConfig`` re-schedules it (with one heartbeat at once);
- battery drain, ``lose_mains()``/``restore_mains()``, ``go_silent(drop_connection)``, ``come_back()``.

Devices do not press alarms (use ``SimDevice``/``Fleet`` for that). Connections are opened in batches under a
concurrency limit so Mosquitto's accept queue is not overrun; ``raise_nofile()`` raises RLIMIT_NOFILE first.
Keep-alive is off by default (0): a connection only ends when a device or the process goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import struct
import time
from collections.abc import Sequence

import structlog
from pydantic import ValidationError

from devices import DeviceConfig, DeviceType
from devices.messages import utcnow
from firmware_sim.catalog import BATTERY_ONLY, FIRMWARE
from firmware_sim.fleet import DEFAULT_MIX, device_ids
from trygg.mqtt import MqttEndpoint
from trygg.settings import Settings

log = structlog.get_logger(__name__)

CONNECT_CONCURRENCY = 200
CONNECT_TIMEOUT_S = 30.0


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE (soft, and hard when allowed: root or CAP_SYS_RESOURCE) to ``wanted``.

    Returns the soft limit now in force. Child processes (a broker the caller starts) inherit it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        wanted = hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- MQTT 3.1.1 packets ---------------------------------------------------------------------------------------
def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _remaining_length(len(body)) + body


def _utf8(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, will_topic: str, will_payload: bytes, keepalive_s: int = 0) -> bytes:
    """CONNECT, clean session, will QoS 1 retained."""
    flags = 0x02 | 0x04 | (1 << 3) | 0x20  # clean session, will flag, will QoS 1, will retain
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + struct.pack("!H", keepalive_s)
    body += _utf8(client_id) + _utf8(will_topic) + _utf8(will_payload)
    return _packet(0x10, body)


def publish_packet(topic: str, payload: bytes, qos: int = 0, retain: bool = False, packet_id: int = 1) -> bytes:
    body = _utf8(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet(0x30 | (qos << 1) | (1 if retain else 0), body)


def subscribe_packet(topic: str, qos: int = 1, packet_id: int = 1) -> bytes:
    return _packet(0x82, struct.pack("!H", packet_id) + _utf8(topic) + bytes([qos]))


DISCONNECT = b"\xe0\x00"


class SwarmDevice(asyncio.Protocol):
    """One light-weight device; its connection is the protocol's transport."""

    __slots__ = (
        "_battery",
        "_battery_at",
        "_pid",
        "_timer",
        "buf",
        "config_version",
        "connack",
        "device_id",
        "device_type",
        "dropped",
        "has_mains",
        "heartbeat_interval_s",
        "heartbeats_sent",
        "last_heartbeat_at",
        "mains",
        "silent",
        "swarm",
        "transport",
    )

    def __init__(self, swarm: Swarm, device_id: str, device_type: DeviceType, heartbeat_interval_s: float) -> None:
        self.device_id = device_id
        self.device_type = device_type
        self.swarm = swarm
        self.transport: asyncio.Transport | None = None
        self.connack: asyncio.Future[int] | None = None
        self.buf = b""
        self.heartbeat_interval_s = heartbeat_interval_s
        self.config_version: int | None = None
        self.has_mains = device_type not in BATTERY_ONLY
        self.mains = self.has_mains
        self._battery = float(random.randint(60, 100))
        self._battery_at = time.monotonic()
        self.silent = False
        self.dropped = False
        self.heartbeats_sent = 0
        self.last_heartbeat_at: float | None = None  # time.time()
        self._timer: asyncio.TimerHandle | None = None
        self._pid = 1

    # --- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sw = self.swarm
        transport.write(connect_packet(self.device_id, sw.topic(self.device_id, "status"), b"offline"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            length, shift, i = 0, 0, pos + 1
            while True:
                if i >= end:
                    self.buf = buf[pos:]
                    return
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            if i + length > end:
                break
            self._packet(buf[pos], buf[i : i + length])
            pos = i + length
        self.buf = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.connack is not None and not self.connack.done():
            self.connack.set_exception(ConnectionError("connection lost before CONNACK"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.dropped and not self.swarm.stopping:
            self.swarm.lost += 1
            log.warning("swarm.connection_lost", device_id=self.device_id, error=repr(exc))

    # --- packets in
    def _packet(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == 2:  # CONNACK
            if self.connack is not None and not self.connack.done():
                self.connack.set_result(body[1] if len(body) > 1 else 255)
        elif kind == 3:  # PUBLISH: the only subscription is our config
            qos = (first >> 1) & 3
            (tlen,) = struct.unpack_from("!H", body)
            pos = 2 + tlen
            if qos:
                pid = body[pos : pos + 2]
                pos += 2
                if self.transport is not None:
                    self.transport.write(b"\x40\x02" + pid)  # PUBACK
            self.apply_config(body[pos:])
        # PUBACK, SUBACK, PINGRESP: nothing to do

    def apply_config(self, payload: bytes) -> None:
        if not payload:
            return
        try:
            config = DeviceConfig.model_validate_json(payload)
        except ValidationError as exc:
            log.error("swarm.config_invalid", device_id=self.device_id, error=str(exc))
            return
        if config.version == self.config_version:
            return
        self.config_version = config.version
        self.heartbeat_interval_s = float(config.heartbeat_interval_s)
        self.swarm.configs_applied += 1
        self.beat()  # report the version at once and re-schedule on the new interval

    # --- state
    @property
    def battery_pct(self) -> int:
        now = time.monotonic()
        if not self.mains:
            drained = self.swarm.battery_drain_pct_per_h * (now - self._battery_at) / 3600
            self._battery = max(0.0, self._battery - drained)
        self._battery_at = now
        return round(self._battery)

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def _next_pid(self) -> int:
        self._pid = self._pid % 65535 + 1
        return self._pid

    def send(self, packet: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(packet)
        return True

    # --- heartbeats
    def heartbeat_payload(self) -> bytes:
        cv = "" if self.config_version is None else f',"config_version":{self.config_version}'
        ts = utcnow().isoformat().replace("+00:00", "Z")
        net = "ethernet" if self.has_mains else "lte-m"
        # a battery-only device says it has no mains (never "mains lost"); the others say whether mains is on
        power = f'"mains":{"true" if self.mains else "false"}' if self.has_mains else '"has_mains":false'
        return (
            f'{{"ts":"{ts}","battery_pct":{self.battery_pct},{power},"firmware":"{FIRMWARE}","network":"{net}"{cv}}}'
        ).encode()

    def beat(self) -> None:
        """Send a heartbeat now (unless silent) and schedule the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.silent or self.transport is None:
            return
        topic = self.swarm.topic(self.device_id, "heartbeat")
        if self.send(publish_packet(topic, self.heartbeat_payload())):
            self.heartbeats_sent += 1
            self.last_heartbeat_at = time.time()
            self.swarm.heartbeats_sent += 1
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + self.heartbeat_interval_s, self.beat)

    # --- faults
    def lose_mains(self) -> None:
        _ = self.battery_pct
        if self.has_mains and self.mains:
            self.mains = False
            self.beat()

    def restore_mains(self) -> None:
        _ = self.battery_pct
        if self.has_mains and not self.mains:
            self.mains = True
            self.beat()

    async def go_silent(self, drop_connection: bool = False) -> None:
        """Stop heartbeats; ``drop_connection`` aborts the TCP connection (no DISCONNECT: the will fires)."""
        self.silent = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if drop_connection and not self.dropped:
            self.dropped = True
            if self.transport is not None:
                self.transport.abort()

    async def come_back(self) -> None:
        if not self.silent:
            return
        self.silent = False
        if self.dropped or self.transport is None:
            self.dropped = False
            await self.swarm.connect_device(self)
        else:
            self.beat()

    async def start_session(self, timeout_s: float) -> None:
        """After the TCP connect: wait for CONNACK, say ``online``, subscribe to the config, first heartbeat."""
        sw = self.swarm
        async with asyncio.timeout(timeout_s):
            rc = await self.connack if self.connack is not None else 255
        self.connack = None
        if rc != 0:
            raise ConnectionError(f"CONNACK refused ({rc}) for {self.device_id}")
        self.send(publish_packet(sw.topic(self.device_id, "status"), b"online", 1, True, self._next_pid()))
        self.send(subscribe_packet(sw.topic(self.device_id, "config"), 1, self._next_pid()))
        if not self.silent:
            self.beat()


class Swarm:
    """``count`` light-weight devices (ids from ``device_ids``) on one broker, one connection each."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        prefix: str = "sim",
        mix: Sequence[DeviceType] = DEFAULT_MIX,
        *,
        mqtt_url: str | None = None,
        heartbeat_interval_s: float = 60.0,
        battery_drain_pct_per_h: float = 0.5,
        concurrency: int = CONNECT_CONCURRENCY,
        spread_s: float | None = None,
        part: tuple[int, int] = (0, 1),
    ) -> None:
        """``part=(k, n)``: only every n-th device from the k-th (a process's share of a bigger fleet)."""
        self.settings = settings
        self.mqtt_url = mqtt_url or settings.mqtt_url
        self.endpoint = MqttEndpoint.from_url(self.mqtt_url)
        if self.endpoint.username is not None or self.endpoint.tls:
            raise ValueError("the light-weight swarm speaks plain MQTT without credentials only")
        self.root = settings.topic_root
        self.battery_drain_pct_per_h = battery_drain_pct_per_h
        self.concurrency = concurrency
        self.spread_s = spread_s  # spread the first heartbeats over this many seconds (default: none)
        k, n = part
        everyone = device_ids(count, prefix, mix)
        self.all_ids = [device_id for device_id, _ in everyone]
        self.devices: dict[str, SwarmDevice] = {
            device_id: SwarmDevice(self, device_id, device_type, heartbeat_interval_s)
            for i, (device_id, device_type) in enumerate(everyone)
            if i % n == k
        }
        self.heartbeats_sent = 0
        self.configs_applied = 0
        self.lost = 0
        self.failed: list[str] = []
        self.stopping = False
        self.connect_s: float | None = None
        self._sem = asyncio.Semaphore(concurrency)

    def topic(self, device_id: str, kind: str) -> str:
        return f"{self.root}/devices/{device_id}/{kind}"

    @property
    def connected(self) -> int:
        return sum(1 for d in self.devices.values() if d.connected)

    async def connect_device(self, device: SwarmDevice, retries: int = 5) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.2
        for attempt in range(retries + 1):
            async with self._sem:
                device.connack = loop.create_future()
                device.buf = b""
                try:
                    await asyncio.wait_for(
                        loop.create_connection(lambda: device, self.endpoint.host, self.endpoint.port),
                        CONNECT_TIMEOUT_S,
                    )
                    await device.start_session(CONNECT_TIMEOUT_S)
                    return
                except (OSError, TimeoutError, ConnectionError) as exc:
                    if device.transport is not None:
                        device.transport.abort()
                    if attempt == retries:
                        raise
                    log.warning("swarm.connect_retry", device_id=device.device_id, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def start(self) -> None:
        """Connect every device (``concurrency`` at a time); failures are counted in ``failed``."""
        started = time.perf_counter()

        async def one(device: SwarmDevice, offset: float) -> None:
            if offset:
                device.silent = True  # no heartbeat before the offset
            try:
                await self.connect_device(device)
            except Exception as exc:
                self.failed.append(device.device_id)
                log.error("swarm.connect_failed", device_id=device.device_id, error=repr(exc))
                return
            if offset:
                device.silent = False
                loop = asyncio.get_running_loop()
                device._timer = loop.call_at(loop.time() + offset, device.beat)

        devices = list(self.devices.values())
        offsets = [random.uniform(0, self.spread_s) if self.spread_s else 0.0 for _ in devices]
        # One task per batch of ``concurrency``: a bounded number of pending tasks for 20,000 devices.
        for i in range(0, len(devices), self.concurrency):
            batch = devices[i : i + self.concurrency]
            await asyncio.gather(*(one(d, o) for d, o in zip(batch, offsets[i : i + self.concurrency], strict=True)))
        self.connect_s = time.perf_counter() - started
        log.info("swarm.started", devices=len(devices), failed=len(self.failed), seconds=round(self.connect_s, 1))

    async def stop(self) -> None:
        """Clean power-off of every device: retained ``offline``, DISCONNECT, close."""
        self.stopping = True
        for device in self.devices.values():
            if device._timer is not None:
                device._timer.cancel()
                device._timer = None
            if device.transport is not None and not device.transport.is_closing():
                device.send(publish_packet(self.topic(device.device_id, "status"), b"offline", 1, True, 1))
                device.send(DISCONNECT)
                device.transport.close()
        await asyncio.sleep(0)

    async def __aenter__(self) -> Swarm:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def rss_kb(pid: int | str = "self") -> int:
    """Resident memory of a process in KB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
