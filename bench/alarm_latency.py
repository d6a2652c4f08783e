"""Alarm latency end to end: device publish -> the alarm in the receiver's live feed (SSE), with N devices connected.

One command starts a private Mosquitto, the receiver and the gateway (each as its own process by default, the way
they run in production; ``--services inprocess`` runs them in this process's event loop instead), registers N
devices, connects N device MQTT connections (gmqtt, one each), logs in as an operator and reads the SSE live feed,
then presses alarms at a steady rate spread across the devices. Three latencies are measured with
``time.perf_counter()`` in this one process:

* ``broker floor``: one client publishes QoS 1 to a topic another client subscribes to (same rate and count);
* ``stored ack``: device publish -> the gateway's ``stored`` ack arrives back at the device;
* ``live feed``: device publish -> the SSE ``alarm`` event (state ``new``) with that (device_id, alarm_id).

    .venv/bin/python -m bench.alarm_latency [--devices 1000] [--alarms 2000] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._common import latency_summary, machine, raise_nofile, table, write_json
from devices import DeviceType
from testing.broker import Broker, wait_port
from testing.harness import create_user, make_settings, prepare_stores, settings_env
from testing.sse import feed_events
from trygg import mqtt
from trygg.settings import Settings

TARGET_P99_MS = 50.0
OPERATOR = "bench-operator"
PASSWORD = "bench-password-1"


@dataclass
class Timings:
    """Send and arrival times (perf_counter seconds) keyed by (device_id, alarm_id) or sequence number."""

    sent: dict[Any, float] = field(default_factory=dict)
    arrived: dict[Any, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    def arrive(self, key: Any, at: float) -> None:
        if key in self.sent and key not in self.arrived:
            self.arrived[key] = at
            if len(self.arrived) >= self.expected:
                self.done.set()

    def latencies(self) -> list[float]:
        return [self.arrived[k] - self.sent[k] for k in self.sent if k in self.arrived]

    def lost(self) -> int:
        return len(self.sent) - len(self.arrived)

    def delivered_rate(self) -> float:
        if not self.arrived or not self.sent:
            return 0.0
        span = max(self.arrived.values()) - min(self.sent.values())
        return len(self.arrived) / span if span > 0 else 0.0


# --- services ------------------------------------------------------------------------------------------------
class ServiceProcess:
    """``python -m trygg_cli <name>`` with the bench's settings as TRYGG_* variables."""

    def __init__(self, name: str, settings: Settings, port: int, log_path: Path, log_level: str) -> None:
        self.name = name
        self.port = port
        env = settings_env(settings)
        env["TRYGG_LOG_LEVEL"] = log_level
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trygg_cli", name], env=env, stdout=self.log, stderr=self.log
        )

    async def wait_ready(self) -> None:
        try:
            await asyncio.to_thread(wait_port, self.port, 60)
        except TimeoutError:
            raise RuntimeError(f"{self.name} did not start; see {self.log.name}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


async def start_services(
    stack: AsyncExitStack, settings: Settings, mode: str, workdir: Path, log_level: str
) -> dict[str, int]:
    """Starts receiver and gateway; returns the pids to account CPU to."""
    if mode == "inprocess":
        from testing.harness import running_gateway, running_receiver

        await stack.enter_async_context(running_receiver(settings))
        await stack.enter_async_context(running_gateway(settings))
        return {}
    receiver = ServiceProcess("receiver", settings, settings.receiver_http_port, workdir / "receiver.log", log_level)
    stack.callback(receiver.stop)
    await receiver.wait_ready()
    gateway = ServiceProcess("gateway", settings, settings.gateway_http_port, workdir / "gateway.log", log_level)
    stack.callback(gateway.stop)
    await gateway.wait_ready()
    return {"receiver": receiver.proc.pid, "gateway": gateway.proc.pid}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the operator's live feed -----------------------------------------------------------------------------------
async def login(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/v1/auth/token", json={"username": OPERATOR, "password": PASSWORD})
    r.raise_for_status()
    http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"


async def read_feed(http: httpx.AsyncClient, feed: Timings, ready: asyncio.Event) -> None:
    """Stamps each ``alarm`` event in state ``new`` with the time its data line arrived. A device's alarms of one
    type that came while its first was open are collapsed into that item (issue 8): an item showing ``repeats`` r
    stands for the device's first r + 1 alarms sent, each stamped when the item first showed it."""
    sent_by_device: dict[str, list[Any]] = {}
    async for event, line in feed_events(http):
        at = time.perf_counter()
        if event == "hello":
            ready.set()
        elif event == "alarm":
            data = json.loads(line)
            if data.get("state") == "new":
                feed.arrive((data["device_id"], data["alarm_id"]), at)
                repeats = int(data.get("repeats") or 0)
                if repeats:
                    keys = sent_by_device.get(data["device_id"])
                    if keys is None or len(keys) < repeats + 1:  # the device's alarms in the order they were sent
                        keys = sent_by_device[data["device_id"]] = sorted(
                            (k for k in feed.sent if k[0] == data["device_id"]), key=feed.sent.__getitem__
                        )
                    for key in keys[: repeats + 1]:
                        feed.arrive(key, at)


# --- MQTT clients -----------------------------------------------------------------------------------------------
async def connect_client(
    client_id: str, endpoint: mqtt.MqttEndpoint, on_message: mqtt.MessageHandler, subscribe_to: str | None
) -> Any:
    client = mqtt.make_client(client_id, persistent=False, on_message=on_message)
    subscribed = asyncio.Event()

    def on_subscribe(client: Any, mid: Any, qos: Any, props: Any) -> None:
        subscribed.set()

    client.on_subscribe = on_subscribe
    await mqtt.connect(client, endpoint, keepalive=300)
    if subscribe_to is not None:
        client.subscribe(subscribe_to, qos=1)
        await asyncio.wait_for(subscribed.wait(), 30)
    return client


async def connect_devices(
    device_ids: list[str], settings: Settings, acks: Timings, concurrency: int = 50
) -> dict[str, Any]:
    endpoint = mqtt.MqttEndpoint.from_url(settings.mqtt_url)
    prefix = f"{settings.topic_root}/devices/"

    async def on_ack(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        at = time.perf_counter()
        ack = json.loads(payload)
        if ack.get("status") == "stored":
            device_id = topic[len(prefix) :].split("/", 1)[0]
            acks.arrive((device_id, ack["alarm_id"]), at)
        return 0

    gate = asyncio.Semaphore(concurrency)
    clients: dict[str, Any] = {}

    async def one(device_id: str) -> None:
        async with gate:
            clients[device_id] = await connect_client(
                f"bench-{device_id}", endpoint, on_ack, f"{prefix}{device_id}/alarm/ack"
            )

    await asyncio.gather(*(one(d) for d in device_ids))
    return clients


async def paced(count: int, rate: float) -> Any:
    """Yields 0..count-1 at a steady rate (absolute schedule: a late tick does not shift the ones after it)."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


async def wait_all(timings: list[Timings], timeout: float) -> None:
    with suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            for t in timings:
                await t.done.wait()


async def broker_floor(settings: Settings, count: int, rate: float, payload_size: int) -> tuple[Timings, float]:
    endpoint = mqtt.MqttEndpoint.from_url(settings.mqtt_url)
    floor = Timings(expected=count)
    topic = f"bench/floor/{os.urandom(3).hex()}"

    async def on_message(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        floor.arrive(int(payload[:10]), time.perf_counter())
        return 0

    async def ignore(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        return 0

    sub = await connect_client("bench-floor-sub", endpoint, on_message, topic)
    pub = await connect_client("bench-floor-pub", endpoint, ignore, None)
    pad = b"x" * max(0, payload_size - 10)
    t0 = time.perf_counter()
    async for i in paced(count, rate):
        floor.sent[i] = time.perf_counter()
        while True:  # a loaded machine can fill the broker's in-flight window: wait for a PUBACK, as a device does
            try:
                pub.publish(topic, b"%010d" % i + pad, qos=1)
                break
            except OverflowError:  # gmqtt: every packet id of the window is in flight
                await asyncio.sleep(0.001)
    publish_rate = count / (time.perf_counter() - t0)
    await wait_all([floor], 30)
    for c in (sub, pub):
        with suppress(Exception):
            await asyncio.wait_for(c.disconnect(), 5)
    return floor, publish_rate


async def press_alarms(
    clients: dict[str, Any], settings: Settings, count: int, rate: float, feed: Timings, acks: Timings
) -> float:
    device_ids = list(clients)
    random.Random(7).shuffle(device_ids)
    run = os.urandom(2).hex()
    t0 = time.perf_counter()
    async for i in paced(count, rate):
        device_id = device_ids[i % len(device_ids)]
        alarm_id = f"b{run}-{i:06d}"
        body = json.dumps(
            {
                "alarm_id": alarm_id,
                "type": "assistance",
                "ts": datetime.now(UTC).isoformat(),
                "battery_pct": 80,
                "text": "bench press",
            }
        ).encode()
        at = time.perf_counter()
        feed.sent[(device_id, alarm_id)] = at
        acks.sent[(device_id, alarm_id)] = at
        clients[device_id].publish(f"{settings.topic_root}/devices/{device_id}/alarm", body, qos=1)
    return count / (time.perf_counter() - t0)


# --- the run --------------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    nofile = raise_nofile(max(65536, args.devices * 4))
    workdir = Path(tempfile.mkdtemp(prefix="trygg-bench-"))
    broker = Broker(workdir=workdir / "broker", extra_config="max_connections -1\n")
    broker.start()
    try:
        settings = make_settings(workdir, broker.url)
        device_ids = [f"bench-{i:05d}" for i in range(args.devices)]
        t = time.perf_counter()
        await prepare_stores(settings, dict.fromkeys(device_ids, DeviceType.PENDANT))
        await create_user(settings, OPERATOR, "operator", PASSWORD)
        print(f"stores ready, {args.devices} devices registered in {time.perf_counter() - t:.1f} s", flush=True)

        async with AsyncExitStack() as stack:
            pids = await start_services(stack, settings, args.services, workdir, args.log_level)
            assert broker.proc is not None
            own = "bench (clients)" if pids else "bench (clients + services)"
            pids = {**pids, "mosquitto": broker.proc.pid, own: os.getpid()}
            print(f"receiver and gateway running ({args.services})", flush=True)

            http = httpx.AsyncClient(base_url=settings.receiver_url, timeout=10)
            stack.push_async_callback(http.aclose)
            await login(http)
            feed = Timings(expected=args.alarms)
            acks = Timings(expected=args.alarms)
            ready = asyncio.Event()
            reader = asyncio.create_task(read_feed(http, feed, ready))

            async def stop_reader() -> None:
                reader.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await reader

            stack.push_async_callback(stop_reader)
            await asyncio.wait_for(ready.wait(), 10)

            t = time.perf_counter()
            clients = await connect_devices(device_ids, settings, acks)
            connect_s = time.perf_counter() - t
            print(f"{len(clients)} device connections up in {connect_s:.1f} s", flush=True)

            async def disconnect_all() -> None:
                async def one(c: Any) -> None:
                    with suppress(Exception):
                        await asyncio.wait_for(c.disconnect(), 5)

                await asyncio.gather(*(one(c) for c in clients.values()))

            stack.push_async_callback(disconnect_all)
            await asyncio.sleep(1.0)  # let the connect burst settle

            print(f"broker floor: {args.alarms} QoS 1 messages at {args.rate}/s ...", flush=True)
            floor, floor_rate = await broker_floor(settings, args.alarms, args.rate, payload_size=130)
            await asyncio.sleep(0.5)

            print(f"alarms: {args.alarms} presses at {args.rate}/s over {len(clients)} devices ...", flush=True)
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            t_cpu = time.perf_counter()
            press_rate = await press_alarms(clients, settings, args.alarms, args.rate, feed, acks)
            await wait_all([acks, feed], args.drain_timeout)
            span = time.perf_counter() - t_cpu
            cpu_used = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
            cpu_pct = {name: round(100 * used / span) for name, used in cpu_used.items()}
            # CPU per alarm (ms): less sensitive to the machine's other load than latency is
            cpu_ms = {name: round(1000 * used / args.alarms, 2) for name, used in cpu_used.items()}
            load_avg = os.getloadavg()
            reader_alive = not reader.done()

        rows = {
            "broker_floor": _row(floor, floor_rate),
            "stored_ack": _row(acks, press_rate),
            "live_feed": _row(feed, press_rate),
        }
        p99 = rows["live_feed"]["latency"].get("p99_ms", float("inf"))
        return {
            "benchmark": "alarm_latency",
            "date": datetime.now(UTC).date().isoformat(),
            "machine": machine(),
            "params": {
                "devices": args.devices,
                "alarms": args.alarms,
                "rate_per_s": args.rate,
                "services": args.services,
                "log_level": args.log_level,
                "databases": "SQLite (aiosqlite) in a temp dir",
                "nofile_soft_limit": nofile,
            },
            "device_connect_s": round(connect_s, 2),
            "sse_reader_alive_at_end": reader_alive,
            "cpu_pct_during_alarms": cpu_pct,
            "cpu_ms_per_alarm": cpu_ms,
            "load_avg_1_5_15_at_end": [round(x, 2) for x in load_avg],
            "results": rows,
            "target": {"live_feed_p99_ms": TARGET_P99_MS, "met": bool(p99 <= TARGET_P99_MS)},
        }
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


def _row(t: Timings, offered_rate: float) -> dict[str, Any]:
    return {
        "sent": len(t.sent),
        "received": len(t.arrived),
        "lost": t.lost(),
        "offered_per_s": round(offered_rate, 1),
        "delivered_per_s": round(t.delivered_rate(), 1),
        "latency": latency_summary(t.latencies()),
    }


def report(result: dict[str, Any]) -> str:
    names = {
        "broker_floor": "broker floor (QoS1 pub->sub)",
        "stored_ack": "publish -> 'stored' ack",
        "live_feed": "publish -> SSE live feed",
    }
    rows = []
    for key, label in names.items():
        r = result["results"][key]
        lat = r["latency"]
        rows.append(
            [
                label,
                r["sent"],
                r["lost"],
                lat.get("p50_ms", "-"),
                lat.get("p95_ms", "-"),
                lat.get("p99_ms", "-"),
                lat.get("max_ms", "-"),
                r["offered_per_s"],
                r["delivered_per_s"],
            ]
        )
    m = result["machine"]
    p = result["params"]
    head = (
        f"alarm latency: {p['devices']} devices, {p['alarms']} alarms at {p['rate_per_s']}/s, "
        f"services {p['services']}\n"
        f"machine: {m['cores']} cores ({m['cpu_model']}), Python {m['python']}, {m['mosquitto']}, gmqtt {m['gmqtt']}\n"
    )
    body = table(["path", "sent", "lost", "p50 ms", "p95 ms", "p99 ms", "max ms", "offered/s", "delivered/s"], rows)
    target = result["target"]
    verdict = "MET" if target["met"] else "NOT MET"
    cpu = ", ".join(f"{k} {v}%" for k, v in result["cpu_pct_during_alarms"].items())
    per_alarm = ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_alarm"].items())
    load = " / ".join(str(x) for x in result["load_avg_1_5_15_at_end"])
    return (
        f"{head}\n{body}\n\nCPU during the alarm phase (100% = one core): {cpu}\n"
        f"CPU ms per alarm: {per_alarm}\n"
        f"machine load average (1/5/15 min) at the end: {load}\n"
        f"target live-feed p99 <= {target['live_feed_p99_ms']} ms: {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--alarms", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="alarms (and floor messages) per second")
    parser.add_argument("--out", type=Path, default=Path("bench/results/alarm_latency.json"))
    parser.add_argument(
        "--services",
        choices=("subprocess", "inprocess"),
        default="subprocess",
        help="gateway and receiver as their own processes (default) or in this process's event loop",
    )
    parser.add_argument("--log-level", default="INFO", help="the services' log level (INFO, as in production)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for stragglers")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print()
    print(report(result))
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    total_lost = sum(r["lost"] for r in result["results"].values())
    if total_lost:
        print(f"LOST {total_lost} messages", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
