"""The chaos scenario of issue 13, shared by ``tests/test_chaos.py`` (the proof) and ``bench/failover.py`` (figures).

Topology, all real and on 127.0.0.1: two independent Mosquittos, three ``trygg gateway`` processes subscribed to
both (``mqtt_second_url``, shared group ``trygg``), two ``trygg receiver`` processes behind HAProxy (the gateways
forward through it, the live-feed reader reads through it), PostgreSQL (a database for each service, made by the
caller). Simulated devices (:class:`DevicePool`) press at a steady rate, each once, while faults are injected in
turn: SIGKILL a follower gateway, the leader gateway, the leader receiver, the first broker; each is restarted after
``down_s``. The pool behaves as the device firmware does (``firmware_sim/device.py``): an alarm is resent every
``resend_s`` until ``stored``, and after ``fallback_after_s`` unconfirmed on one broker the device moves to the
other; heartbeats every ``heartbeat_s`` on the broker it is on.

Why a pool and not 1,000 ``SimDevice`` objects: a ``SimDevice`` is a gmqtt client with its own connection, outbox
file and three tasks; 1,000 of them in the test process beside nine services would take more of the two cores than
the services do. The pool keeps each device's own state (its broker, its unconfirmed alarm, its resends) and speaks
for all of them over one connection per broker, as the devices' topics say who they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx

from devices import DeviceType
from testing.broker import Broker, free_port
from testing.haproxy import HAProxy
from testing.harness import ServiceProcess, create_user, make_settings, prepare_stores
from testing.sse import feed_events
from testing.wait import eventually
from trygg import mqtt
from trygg.settings import Settings

OPERATOR, PASSWORD = "chaos-op", "correct-horse-1"


@dataclass
class ChaosConfig:
    devices: int = 1000
    press_s: float = 60.0  # every device presses once, spread evenly over this time
    first_fault_s: float = 8.0  # the first fault this long after the first press
    fault_every_s: float = 12.0
    down_s: float = 4.0  # a killed part is restarted after this long
    resend_s: float = 5.0  # the devices' resend interval (the simulator's sim_resend_min_s)
    fallback_after_s: float = 8.0  # a device moves to the other broker after this long unconfirmed
    heartbeat_s: float = 10.0  # the devices' heartbeat interval (the gateways allow it + heartbeat_grace_s)
    escalate_first_s: float = 5.0
    escalate_second_s: float = 10.0
    drain_timeout_s: float = 120.0
    faults: tuple[str, ...] = ("gateway", "leader_gateway", "receiver", "broker")


@dataclass
class Alarm:
    device_id: str
    alarm_id: str
    payload: bytes
    pressed_at: float
    sends: int = 1
    last_sent: float = 0.0
    stored_at: float | None = None


@dataclass
class Device:
    device_id: str
    broker: int = 0  # index into the pool's connections
    path_since: float = 0.0
    alarm: Alarm | None = None  # the unconfirmed one


class DevicePool:
    """Many simulated devices over one MQTT connection per broker (module docstring: why)."""

    def __init__(self, settings: Settings, urls: list[str], device_ids: list[str], cfg: ChaosConfig) -> None:
        self.root = settings.topic_root
        self.cfg = cfg
        self.devices = {d: Device(d) for d in device_ids}
        self.alarms: dict[tuple[str, str], Alarm] = {}
        self.stored: list[float] = []  # time of each alarm's first "stored", in order
        self.acks_elsewhere = 0  # "stored" heard on a broker the alarm was never sent on
        self._sent_on: dict[tuple[str, str], set[int]] = {}
        self.connections = [
            mqtt.MqttConnection(
                f"chaos-devices-{n}-{time.monotonic_ns() % 10**9}",
                mqtt.MqttEndpoint.from_url(url),
                persistent=False,
                reconnect_delay_s=0.5,
                on_message=functools.partial(self._on_ack, n),
                on_connect=functools.partial(self._subscribe, n),
            )
            for n, url in enumerate(urls)
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def _subscribe(self, n: int, _session_present: bool) -> None:
        self.connections[n].subscribe(f"{self.root}/devices/+/alarm/ack", qos=1)

    async def start(self) -> None:
        for connection in self.connections:
            await connection.connect()
            await asyncio.wait_for(connection.connected.wait(), 10)
        now = time.monotonic()
        for device in self.devices.values():
            device.path_since = now
        self._tasks = [asyncio.create_task(self._heartbeats()), asyncio.create_task(self._resends())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in self.connections:
            await connection.disconnect()

    def press(self, device_id: str, alarm_id: str) -> None:
        device = self.devices[device_id]
        body = {"alarm_id": alarm_id, "type": "fall", "ts": datetime.now(UTC).isoformat()}
        now = time.monotonic()
        alarm = Alarm(device_id, alarm_id, json.dumps(body).encode(), now, last_sent=now)
        self.alarms[(device_id, alarm_id)] = alarm
        device.alarm = alarm
        device.path_since = now
        self._send(device, alarm)

    def _send(self, device: Device, alarm: Alarm) -> None:
        self._sent_on.setdefault((alarm.device_id, alarm.alarm_id), set()).add(device.broker)
        with contextlib.suppress(mqtt.PublishFailed):
            self.connections[device.broker].publish(f"{self.root}/devices/{device.device_id}/alarm", alarm.payload)

    async def _on_ack(self, n: int, message: mqtt.Message) -> None:
        device_id = message.topic.split("/")[-3]
        ack = json.loads(message.payload)
        alarm = self.alarms.get((device_id, ack.get("alarm_id", "")))
        if alarm is None or ack.get("status") != "stored" or alarm.stored_at is not None:
            return
        if n not in self._sent_on.get((device_id, alarm.alarm_id), set()):
            self.acks_elsewhere += 1
        alarm.stored_at = time.monotonic()
        self.stored.append(alarm.stored_at)
        device = self.devices[device_id]
        if device.alarm is alarm:
            device.alarm = None

    async def _resends(self) -> None:
        """The firmware's outbox: resend every resend_s; after fallback_after_s on one broker, the other one."""
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for device in self.devices.values():
                alarm = device.alarm
                if alarm is None:
                    continue
                if now - device.path_since >= self.cfg.fallback_after_s:
                    device.broker = 1 - device.broker
                    device.path_since = now
                elif now - alarm.last_sent < self.cfg.resend_s:
                    continue
                alarm.sends += 1
                alarm.last_sent = now
                self._send(device, alarm)

    async def _heartbeats(self) -> None:
        """Each device every heartbeat_s, spread evenly, on an absolute schedule (a loaded loop catches up rather
        than stretching every device's interval)."""
        ids = list(self.devices)
        step = self.cfg.heartbeat_s / max(1, len(ids))
        due = time.monotonic()
        while True:
            for device_id in ids:
                due += step
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                device = self.devices[device_id]
                connection = self.connections[device.broker]
                if connection.is_connected:
                    body = json.dumps({"ts": datetime.now(UTC).isoformat(), "battery_pct": 80}).encode()
                    with contextlib.suppress(mqtt.PublishFailed):
                        connection.publish(f"{self.root}/devices/{device_id}/heartbeat", body, qos=0)


class FeedWatch:
    """An operator's live feed through HAProxy: the arrival time of each new alarm; reconnects when cut."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.arrivals: list[float] = []
        self.reconnects = 0
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            while True:
                try:
                    if "Authorization" not in http.headers:
                        r = await http.post("/api/v1/auth/token", json={"username": OPERATOR, "password": PASSWORD})
                        r.raise_for_status()
                        http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                    async for event, data in feed_events(http):
                        if event == "hello":
                            self.ready.set()
                        elif event == "alarm" and json.loads(data).get("state") == "new":
                            self.arrivals.append(time.monotonic())
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.reconnects += 1
                    await asyncio.sleep(0.2)  # the browser's retry


@dataclass
class Fault:
    kind: str
    target: str
    killed_at: float
    restarted_at: float | None = None
    leader_after: str | None = None
    leader_lock_s: float | None = None  # from the kill until another instance held the leader lock
    leader_takeover_s: float | None = None  # ... plus V = 3 x leader_check_s, which a new holder waits before acting


@dataclass
class ChaosResult:
    config: ChaosConfig
    faults: list[Fault]
    pool: DevicePool
    feed: FeedWatch
    started_at: float
    gateway_db: str
    receiver_db: str
    checks: dict[str, Any] = field(default_factory=dict)

    def per_fault(self) -> list[dict[str, Any]]:
        """Per fault: time to the first alarm stored after the kill, longest gaps in stored alarms and in the live
        feed between the kill and the next fault (or the end of the presses), alarms pressed in that window that
        needed a resend, and the slowest of them from press to stored."""
        end = self.started_at + self.config.press_s
        out = []
        for n, fault in enumerate(self.faults):
            until = self.faults[n + 1].killed_at if n + 1 < len(self.faults) else end
            pressed = [a for a in self.pool.alarms.values() if fault.killed_at <= a.pressed_at < until]
            first = min((t for t in self.pool.stored if t >= fault.killed_at), default=None)
            out.append(
                {
                    "fault": fault.kind,
                    "target": fault.target,
                    "stored_again_after_s": round(first - fault.killed_at, 2) if first is not None else None,
                    "longest_stored_gap_s": gap(self.pool.stored, fault.killed_at, until),
                    "longest_feed_gap_s": gap(self.feed.arrivals, fault.killed_at, until),
                    "alarms_pressed": len(pressed),
                    "alarms_resent": sum(a.sends > 1 for a in pressed),
                    "slowest_press_to_stored_s": round(
                        max((a.stored_at - a.pressed_at for a in pressed if a.stored_at is not None), default=0.0), 2
                    ),
                    "leader_lock_s": fault.leader_lock_s,
                    "leader_takeover_s": fault.leader_takeover_s,
                }
            )
        return out


def gap(times: list[float], start: float, end: float) -> float:
    """The longest interval without an event between ``start`` and ``end`` (both ends count as bounds)."""
    inside = sorted(t for t in times if start <= t <= end)
    points = [start, *inside, end]
    return round(max(b - a for a, b in itertools.pairwise(points)), 2)


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def leaders(gateway_db: str, receiver_db: str) -> dict[str, str | None]:
    """The instance holding each service's leader lock now (None: nobody)."""
    query = (
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE $1"
    )
    found: dict[str, str | None] = {}
    for role, url in (("gateway", gateway_db), ("receiver", receiver_db)):
        conn = await asyncpg.connect(plain_dsn(url))
        try:
            name = await conn.fetchval(query, f"trygg.{role}.leader:%")
        finally:
            await conn.close()
        found[role] = name.rsplit(":", 1)[1] if name else None
    return found


class Topology:
    """The services of the scenario; ``async with`` starts and stops them."""

    def __init__(self, workdir: Path, gateway_db: str, receiver_db: str, cfg: ChaosConfig) -> None:
        self.workdir = workdir
        self.cfg = cfg
        self.brokers = [Broker(workdir=workdir / f"mosquitto-{n}") for n in (1, 2)]
        receiver_ports = [free_port(), free_port()]
        self.proxy = HAProxy([f"127.0.0.1:{p}" for p in receiver_ports])
        self.base = make_settings(
            workdir,
            self.brokers[0].url,
            mqtt_second_url=self.brokers[1].url,
            gateway_database_url=gateway_db,
            receiver_database_url=receiver_db,
            receiver_url=self.proxy.url,
            mqtt_shared_group="trygg",
            leader_check_s=1.0,
            leader_ttl_s=5.0,
            heartbeat_interval_alarm_s=cfg.heartbeat_s,
            heartbeat_grace_s=15.0,
            supervision_period_s=0.5,
            health_flush_s=1.0,
            heartbeat_share_flush_s=0.5,
            area_outage_min_devices=100_000,  # the scenario looks at single devices
            escalate_first_s=cfg.escalate_first_s,
            escalate_second_s=cfg.escalate_second_s,
            forward_backoff_max_s=1.0,
        )
        self.gateways = {
            f"gw{n}": ServiceProcess(
                self.base.model_copy(update={"instance_name": f"gw{n}", "gateway_http_port": free_port()}),
                workdir / f"gw{n}.log",
            )
            for n in (1, 2, 3)
        }
        self.receivers = {
            f"rx{n}": ServiceProcess(
                self.base.model_copy(
                    update={"instance_name": f"rx{n}", "receiver_http_port": port, "receiver_url": self.proxy.url}
                ),
                workdir / f"rx{n}.log",
                "receiver",
            )
            for n, port in zip((1, 2), receiver_ports, strict=True)
        }

    @property
    def processes(self) -> dict[str, ServiceProcess]:
        return self.gateways | self.receivers

    async def prepare(self, device_ids: list[str]) -> None:
        await prepare_stores(self.base, dict.fromkeys(device_ids, DeviceType.PENDANT))
        await create_user(self.base, OPERATOR, "operator", PASSWORD)

    def start_brokers(self) -> None:
        for broker in self.brokers:
            broker.start()

    async def __aenter__(self) -> Topology:
        """The services (the brokers are started before, with :meth:`start_brokers`: the devices' heartbeats
        begin before any gateway supervises them)."""
        for process in self.processes.values():
            process.spawn()
        await asyncio.gather(*(asyncio.to_thread(p.wait_ready, 60) for p in self.processes.values()))
        self.proxy.start()
        await self.wait_healthy()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for process in self.processes.values():
            process.stop()
        self.proxy.stop()

    def stop_brokers(self) -> None:
        for broker in self.brokers:
            broker.stop()

    async def wait_healthy(self) -> None:
        """Every gateway on both brokers, HAProxy passing to a receiver."""
        async with httpx.AsyncClient(timeout=5) as http:

            async def ready() -> bool:
                try:
                    for gw in self.gateways.values():
                        health = (await http.get(f"http://127.0.0.1:{gw.port}/health")).json()
                        if health.get("brokers_connected") != [True, True]:
                            return False
                    return (await http.get(f"{self.proxy.url}/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            ok: bool = await eventually(ready, timeout=60, interval=0.2)
            assert ok

    def restart(self, name: str) -> None:
        if name.startswith("broker"):
            self.brokers[int(name[-1]) - 1].start()
        else:
            process = self.processes[name]
            process.spawn()

    def kill(self, name: str) -> None:
        if name.startswith("broker"):
            broker = self.brokers[int(name[-1]) - 1]
            assert broker.proc is not None
            broker.proc.kill()
            broker.proc.wait(10)
            broker.proc = None
        else:
            self.processes[name].kill()


async def run_chaos(
    workdir: Path, gateway_db: str, receiver_db: str, cfg: ChaosConfig, say: Callable[[str], None] = print
) -> ChaosResult:
    """Run the scenario; the result holds the raw times and ``checks`` (what the proof asserts)."""
    device_ids = [f"chaos-{n:04d}" for n in range(cfg.devices)]
    t0 = time.monotonic()
    shout = say

    def stamped(text: str) -> None:
        shout(f"[{time.monotonic() - t0:6.1f} s] {text}")

    say = stamped

    topo = Topology(workdir, gateway_db, receiver_db, cfg)
    await topo.prepare(device_ids)
    say("chaos: stores prepared")
    async with contextlib.AsyncExitStack() as stack:
        topo.start_brokers()
        stack.callback(topo.stop_brokers)
        pool = DevicePool(topo.base, [b.url for b in topo.brokers], device_ids, cfg)
        await pool.start()
        stack.push_async_callback(pool.stop)
        await stack.enter_async_context(topo)
        await _all_online(gateway_db, len(device_ids))
        say("chaos: every device online in the leader's device_health")
        feed = FeedWatch(topo.proxy.url)
        await feed.start()
        stack.push_async_callback(feed.stop)
        say(f"chaos: {cfg.devices} devices, 2 brokers, 3 gateways, 2 receivers behind HAProxy; presses begin")
        started = time.monotonic()
        result = ChaosResult(cfg, [], pool, feed, started, gateway_db, receiver_db)
        presses = asyncio.create_task(_press_all(pool, device_ids, started, cfg.press_s))
        try:
            for n, kind in enumerate(cfg.faults):
                at = started + cfg.first_fault_s + n * cfg.fault_every_s
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                result.faults.append(await _fault(topo, kind, cfg, say))
            await presses
            await asyncio.gather(*(asyncio.to_thread(p.wait_ready, 120) for p in topo.processes.values()))
            await _drain(topo, result, say)
        finally:
            presses.cancel()
            await asyncio.gather(presses, return_exceptions=True)
    return result


async def _all_online(gateway_db: str, count: int) -> None:
    """The warm-up: the faults begin once the leader has every device online in the shared store (as in service,
    where a fleet is known long before a fault). (A device not yet in ``device_health`` when a leader is killed is
    held to the takeover's unknown window like every other: docs/architecture.md, "Several instances".)"""

    async def online() -> bool:
        conn = await asyncpg.connect(plain_dsn(gateway_db))
        try:
            n = await conn.fetchval("SELECT count(*) FROM device_health WHERE status = 'online'")
        finally:
            await conn.close()
        return bool(n == count)

    ok: bool = await eventually(online, timeout=120, interval=0.5)
    assert ok


async def _press_all(pool: DevicePool, device_ids: list[str], started: float, press_s: float) -> None:
    every = press_s / max(1, len(device_ids))
    for n, device_id in enumerate(device_ids):
        await asyncio.sleep(max(0.0, started + n * every - time.monotonic()))
        pool.press(device_id, f"chaos-a{n:04d}")


async def _fault(topo: Topology, kind: str, cfg: ChaosConfig, say: Callable[[str], None]) -> Fault:
    now = await leaders(topo.base.gateway_database_url, topo.base.receiver_database_url)
    if kind == "gateway":
        target = next(name for name in topo.gateways if name != now["gateway"])
    elif kind == "leader_gateway":
        target = now["gateway"] or "gw1"
    elif kind == "receiver":
        target = now["receiver"] or "rx1"
    else:
        target = "broker1"
    topo.kill(target)
    fault = Fault(kind, target, time.monotonic())
    say(f"chaos: SIGKILL {target} ({kind}); leaders were {now}")
    if kind in ("leader_gateway", "receiver"):
        role = "gateway" if kind == "leader_gateway" else "receiver"

        async def taken_over() -> str | None:
            holder = (await leaders(topo.base.gateway_database_url, topo.base.receiver_database_url))[role]
            return holder if holder not in (None, target) else None

        fault.leader_after = await eventually(taken_over, timeout=30, interval=0.1)
        fault.leader_lock_s = round(time.monotonic() - fault.killed_at, 2)
        fault.leader_takeover_s = round(fault.leader_lock_s + 3 * topo.base.leader_check_s, 2)
        say(f"chaos: {role} leader lock taken by {fault.leader_after} after {fault.leader_lock_s} s")
    await asyncio.sleep(max(0.0, fault.killed_at + cfg.down_s - time.monotonic()))
    topo.restart(target)  # a service is started, not waited for: the next fault comes on its schedule
    fault.restarted_at = time.monotonic()
    say(f"chaos: {target} restarted")
    return fault


async def _drain(topo: Topology, result: ChaosResult, say: Callable[[str], None]) -> None:
    """Wait until every press is stored, queued and escalated twice; then collect what the proof checks."""
    pool, cfg = result.pool, result.config
    await eventually(
        lambda: all(a.stored_at is not None for a in pool.alarms.values()), cfg.drain_timeout_s, interval=0.2
    )
    say(f"chaos: all {len(pool.alarms)} alarms stored")
    rx = await asyncpg.connect(plain_dsn(result.receiver_db))
    gw = await asyncpg.connect(plain_dsn(result.gateway_db))
    try:

        async def escalated() -> bool:
            level_two = await rx.fetchval(
                "SELECT count(*) FROM queue_alarms WHERE alarm_id LIKE 'chaos-a%' AND escalation_level = 2"
            )
            return bool(level_two == len(pool.alarms))

        # (Level 2 is the last: once every alarm is there, no later round can add an escalation.)
        done: bool = await eventually(escalated, cfg.drain_timeout_s, interval=0.5)
        assert done
        say("chaos: all alarms escalated to level 2")
        queue = await rx.fetch("SELECT device_id, alarm_id, count(*) AS n FROM queue_alarms GROUP BY 1, 2")
        events = await rx.fetch("SELECT alarm_pk, params FROM alarm_events WHERE action = 'escalated'")
        intake = await gw.fetch("SELECT device_id, alarm_id, type FROM intake_alarms")
    finally:
        await rx.close()
        await gw.close()
    levels = [(row["alarm_pk"], int(json.loads(row["params"])["level"])) for row in events]
    pressed = set(pool.alarms)
    result.checks = {
        "pressed": len(pressed),
        "queued": {(r["device_id"], r["alarm_id"]) for r in queue},
        "queued_twice": [(r["device_id"], r["alarm_id"]) for r in queue if r["n"] != 1],
        "escalations": len(levels),
        "escalated_twice": len(levels) - len(set(levels)),
        "offline_alarms": sum(r["type"] == "device_offline" for r in intake),
        "stored_in_gateway": {(r["device_id"], r["alarm_id"]) for r in intake if r["alarm_id"].startswith("chaos-a")},
        "acks_on_another_broker": pool.acks_elsewhere,
        "feed_reconnects": result.feed.reconnects,
    }
