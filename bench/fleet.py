"""Fleet: heartbeat ingest throughput, 20,000 connected devices, silence -> device_offline alarm.

    .venv/bin/python -m bench.fleet [--part a|b|c|all] [--devices 20000] [--minutes 5] [--out bench/results/fleet.json]

(a) ingest: a private Mosquitto, the gateway as its own process, ``--flood-devices`` registered devices and a
    raw-socket QoS 0 publisher (separate process, pre-built valid Heartbeat packets, at most ``--window`` messages
    ahead of what the gateway has counted) flooding ``{root}/devices/{id}/heartbeat``. The rate is read from the
    gateway's ``trygg_gateway_heartbeats_total`` over ``--seconds``. Then, in the same run, the gateway is stopped
    and a bare gmqtt subscriber (an inline handler that only counts, no task per message, as the gateway's
    heartbeat connection consumes) on the same wildcard
    takes its place with the same publisher: the raw ceiling. Targets: >= 15,000/s and >= 0.7 of the ceiling.
(b) soak: ``--devices`` light-weight simulated devices (``trygg sim run --lightweight``, one MQTT connection each,
    split over processes below RLIMIT_NOFILE) at a 60 s heartbeat for ``--minutes``, with the gateway and the
    receiver running; counts device_offline/area_outage alarms (must be 0) and reports CPU and RSS of every process.
(c) detection: ``--silent-devices`` devices at a 5 s heartbeat (settings heartbeat_interval_alarm_s=5,
    heartbeat_grace_s=2, supervision_period_s=0.2, area_outage_min_devices=100000 so each gets its own alarm); half
    go silent keeping their connection (deadline path), half drop it without DISCONNECT (last will path); time from
    the last heartbeat (or the drop) to the device_offline alarm on the receiver's SSE live feed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from alarm_receiver.db import migrate as migrate_receiver
from bench._common import latency_summary, machine, table, write_json
from bench.alarm_latency import ServiceProcess, cpu_seconds
from bench.mqtt_clients import Case, subscriber
from devices import DeviceType
from firmware_sim.fleet import device_ids
from firmware_sim.swarm import Swarm, _packet, _utf8, publish_packet, raise_nofile, rss_kb
from gateway.db import migrate as migrate_gateway
from gateway.registry import add_device
from testing.broker import Broker
from testing.harness import create_user, make_settings, settings_env
from testing.sse import feed_events
from testing.wait import eventually
from trygg.db import engine_scope, transaction
from trygg.settings import Settings

METRICS_TOKEN = secrets.token_urlsafe(32)  # the services refuse published tokens
OPERATOR = "bench-operator"
PASSWORD = "bench-password-1"
TARGET_RATE = 15000
TARGET_RATIO = 0.7
CHUNK = 100
FD_RESERVE = 48  # descriptors Mosquitto needs besides device connections (listener, log, services, bench)


# --- helpers -------------------------------------------------------------------------------------------------
def proc_sample(pid: int) -> dict[str, float]:
    """CPU seconds and RSS (MB) of a process, from /proc."""
    try:
        return {"cpu_s": cpu_seconds(pid), "rss_mb": rss_kb(pid) / 1024}
    except (OSError, IndexError, ValueError):
        return {"cpu_s": 0.0, "rss_mb": 0.0}


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += children(p)
    return pids


async def register(settings: Settings, ids: list[tuple[str, DeviceType]]) -> float:
    started = time.perf_counter()
    async with transaction(settings.gateway_database_url, migrate_gateway) as session:
        for device_id, device_type in ids:
            await add_device(session, device_id, device_type, exist_ok=True)
    async with engine_scope(settings.receiver_database_url) as engine:
        await migrate_receiver(engine)
    return time.perf_counter() - started


async def metric(http: httpx.AsyncClient, name: str) -> float:
    r = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    r.raise_for_status()
    total = 0.0
    for line in r.text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def wait_metric(http: httpx.AsyncClient, name: str, value: float, timeout: float = 30) -> None:
    async def reached() -> bool:
        return await metric(http, name) >= value

    await eventually(reached, timeout, interval=0.1)


def settings_for(workdir: Path, broker: Broker, **overrides: Any) -> Settings:
    return make_settings(workdir, broker.url, metrics_token=METRICS_TOKEN, log_level="INFO", **overrides)


def start_broker(workdir: Path) -> Broker:
    # max_connections -1: no limit beyond RLIMIT_NOFILE (inherited from this process, raised in main()).
    broker = Broker(workdir=workdir / "mosquitto", extra_config="max_connections -1\n")
    broker.start()
    return broker


# --- (a) the flood publisher -----------------------------------------------------------------------------------
def flood(port: int, root: str, ids: list[str], received: Any, sent: Any, stop: Any, window: int) -> None:
    """Raw MQTT 3.1.1 QoS 0 publisher of valid heartbeats, at most ``window`` ahead of ``received``."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c" + _utf8(f"bench-flood-{os.getpid()}")))
    if sock.recv(4)[:1] != b"\x20":
        raise RuntimeError("flood: no CONNACK")
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    packets = [
        publish_packet(
            f"{root}/devices/{d}/heartbeat",
            f'{{"ts":"{ts}","battery_pct":{50 + i % 50},"mains":false,"firmware":"bench/1",'
            f'"network":"lte-m","signal_dbm":-{60 + i % 40}}}'.encode(),
        )
        for i, d in enumerate(ids)
    ]
    chunks = [b"".join(packets[i : i + CHUNK]) for i in range(0, len(packets) - CHUNK + 1, CHUNK)]
    n = i = 0
    while not stop.is_set():
        if n - received.value < window:
            sock.sendall(chunks[i])
            i = (i + 1) % len(chunks)
            n += CHUNK
            sent.value = n
        else:
            time.sleep(0.0005)
    with suppress(OSError):
        sock.sendall(b"\xe0\x00")
        sock.close()


async def part_a(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    broker = start_broker(workdir / "a")
    settings = settings_for(workdir / "a", broker)
    ids = [(f"flood-{i:05d}", DeviceType.PENDANT) for i in range(args.flood_devices)]
    reg_s = await register(settings, ids)
    print(f"(a) registered {len(ids)} devices in {reg_s:.1f} s", flush=True)
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {"flood_devices": len(ids), "window_s": args.seconds, "max_ahead": args.window}
    gateway = ServiceProcess("gateway", settings, settings.gateway_http_port, workdir / "a" / "gateway.log", "INFO")
    try:
        await gateway.wait_ready()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.gateway_http_port}", timeout=10) as http:
            await wait_metric(http, "trygg_gateway_mqtt_connected", 1)
            await asyncio.sleep(0.5)  # the subscriptions follow the connect
            received, sent, stop = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False), ctx.Event()
            base = await metric(http, "trygg_gateway_heartbeats_total")
            names = [d for d, _ in ids]
            pub = ctx.Process(
                target=flood, args=(broker.port, settings.topic_root, names, received, sent, stop, args.window)
            )
            pub.start()
            try:

                async def sample() -> tuple[float, float, int, float, float]:
                    count = await metric(http, "trygg_gateway_heartbeats_total") - base
                    received.value = int(count)
                    return (
                        time.perf_counter(),
                        count,
                        sent.value,
                        cpu_seconds(gateway.proc.pid),
                        cpu_seconds(broker.proc.pid if broker.proc else 0),
                    )

                t_end = time.perf_counter() + 2.0  # warm-up
                while time.perf_counter() < t_end:
                    await sample()
                    await asyncio.sleep(0.05)
                t0, c0, s0, g0, b0 = await sample()
                t_end = t0 + args.seconds
                while time.perf_counter() < t_end:
                    await sample()
                    await asyncio.sleep(0.05)
                t1, c1, s1, g1, b1 = await sample()
            finally:
                stop.set()
                pub.join(10)
            dt = t1 - t0
            rejected = await metric(http, "trygg_gateway_rejected_total")
            out["gateway"] = {
                "heartbeats_per_s": round((c1 - c0) / dt),
                "published_per_s": round((s1 - s0) / dt),
                "backlog_at_end": s1 - c1,
                "gateway_cpu_pct": round(100 * (g1 - g0) / dt),
                "mosquitto_cpu_pct": round(100 * (b1 - b0) / dt),
                "gateway_rss_mb": round(rss_kb(gateway.proc.pid) / 1024),
                "rejected_total": rejected,
            }
    finally:
        gateway.stop()
    # the raw ceiling: a bare gmqtt subscriber on the same wildcard with the same publisher
    # inline handler (no task per message), as the gateway's heartbeat connection consumes: the fair ceiling
    case = Case("gmqtt-inline", 0, broker.port, f"{settings.topic_root}/devices/+/heartbeat", args.seconds, args.window)
    received, sent, stop = ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False), ctx.Event()
    ready, results = ctx.Event(), ctx.Queue()
    sub = ctx.Process(target=subscriber, args=(case, received, sent, ready, results))
    sub.start()
    if not await asyncio.to_thread(ready.wait, 30):
        raise RuntimeError("raw subscriber not ready")
    pub = ctx.Process(
        target=flood, args=(broker.port, settings.topic_root, [d for d, _ in ids], received, sent, stop, args.window)
    )
    pub.start()
    try:
        raw: dict[str, Any] = await asyncio.to_thread(results.get, True, args.seconds + 60)
    finally:
        stop.set()
        pub.join(10)
        sub.join(10)
        broker.stop()
    out["raw_gmqtt"] = raw
    rate, ceiling = out["gateway"]["heartbeats_per_s"], raw.get("received_per_s", 0)
    out["ratio"] = round(rate / ceiling, 3) if ceiling else None
    out["target_rate_met"] = rate >= TARGET_RATE
    out["target_ratio_met"] = bool(ceiling) and rate / ceiling >= TARGET_RATIO
    return out


# --- (b) the soak ----------------------------------------------------------------------------------------------
async def part_b(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = args.devices
    devices = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard - FD_RESERVE)
    if devices < wanted:
        print(f"(b) RLIMIT_NOFILE hard limit {hard}: Mosquitto can hold {devices} device connections, not {wanted}")
    broker = start_broker(workdir / "b")
    settings = settings_for(workdir / "b", broker)
    ids = device_ids(devices, "sim")
    reg_s = await register(settings, ids)
    await create_user(settings, OPERATOR, "operator", PASSWORD)
    print(f"(b) registered {len(ids)} devices in {reg_s:.1f} s", flush=True)
    out: dict[str, Any] = {"devices_requested": wanted, "devices": devices, "rlimit_nofile_hard": hard}
    services: list[ServiceProcess] = []
    sim: subprocess.Popen[bytes] | None = None
    try:
        for name, port in (("receiver", settings.receiver_http_port), ("gateway", settings.gateway_http_port)):
            services.append(ServiceProcess(name, settings, port, workdir / "b" / f"{name}.log", "INFO"))
            await services[-1].wait_ready()
        receiver, gateway = services
        env = settings_env(settings)
        sim_log = workdir / "b" / "sim.log"
        cmd = [
            sys.executable,
            "-m",
            "trygg_cli",
            "sim",
            "run",
            "--lightweight",
            "--count",
            str(devices),
            "--heartbeat-interval",
            "60",
            "--spread",
            "60",
        ]
        started = time.perf_counter()
        with sim_log.open("ab") as log:
            sim = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.gateway_http_port}", timeout=30) as http:
            async with asyncio.timeout(600):
                while True:
                    text = sim_log.read_text(errors="replace")
                    parts = [ln for ln in text.splitlines() if ln.startswith("swarm part")]
                    if sim.poll() is not None:
                        raise RuntimeError(f"the swarm exited; see {sim_log}")
                    if parts and len(parts) >= int(parts[0].split()[2].rstrip(":").split("/")[1]):
                        break
                    await asyncio.sleep(0.5)
            connect_s = time.perf_counter() - started
            out["connect_s"] = round(connect_s, 1)
            out["swarm_report"] = parts
            print(f"(b) {devices} devices connected in {connect_s:.1f} s: {parts}", flush=True)
            pids = {
                "gateway": [gateway.proc.pid],
                "receiver": [receiver.proc.pid],
                "mosquitto": [broker.proc.pid] if broker.proc else [],
                "sim": tree(sim.pid),
            }
            hb0 = await metric(http, "trygg_gateway_heartbeats_total")
            cpu0 = {k: sum(proc_sample(p)["cpu_s"] for p in v) for k, v in pids.items()}
            t0 = time.perf_counter()
            peak = {k: 0.0 for k in pids}
            samples: list[dict[str, Any]] = []
            end = t0 + args.minutes * 60
            while time.perf_counter() < end:
                await asyncio.sleep(min(10.0, max(0.0, end - time.perf_counter())))
                row: dict[str, Any] = {"t_s": round(time.perf_counter() - t0)}
                for k, v in pids.items():
                    rss = sum(proc_sample(p)["rss_mb"] for p in v)
                    peak[k] = max(peak[k], rss)
                    row[f"{k}_rss_mb"] = round(rss)
                row["heartbeats"] = await metric(http, "trygg_gateway_heartbeats_total") - hb0
                row["offline_alarms"] = await metric(http, "trygg_gateway_device_offline_alarms_total")
                samples.append(row)
                print(f"(b) {row}", flush=True)
            dt = time.perf_counter() - t0
            cpu1 = {k: sum(proc_sample(p)["cpu_s"] for p in v) for k, v in pids.items()}
            hb1 = await metric(http, "trygg_gateway_heartbeats_total")
            offline_metric = await metric(http, "trygg_gateway_device_offline_alarms_total")
        async with httpx.AsyncClient(base_url=settings.receiver_url, timeout=30) as api:
            r = await api.post("/api/v1/auth/token", json={"username": OPERATOR, "password": PASSWORD})
            r.raise_for_status()
            api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            r = await api.get("/api/v1/alarms", params={"limit": 500})
            r.raise_for_status()
            alarms = r.json()
        kinds: dict[str, int] = {}
        for alarm in alarms:
            kinds[alarm["type"]] = kinds.get(alarm["type"], 0) + 1
        out.update(
            {
                "minutes": args.minutes,
                "window_s": round(dt, 1),
                "heartbeats_per_s": round((hb1 - hb0) / dt, 1),
                "expected_heartbeats_per_s": round(devices / 60, 1),
                "device_offline_alarms_metric": offline_metric,
                "alarms_in_queue_by_type": kinds,
                "false_offline": kinds.get("device_offline", 0) + kinds.get("area_outage", 0) + int(offline_metric),
                "cpu_pct": {k: round(100 * (cpu1[k] - cpu0[k]) / dt, 1) for k in pids},
                "rss_mb_end": {k: round(sum(proc_sample(p)["rss_mb"] for p in v)) for k, v in pids.items()},
                "rss_mb_peak": {k: round(v) for k, v in peak.items()},
                "sim_processes": len(pids["sim"]),
                "samples": samples,
            }
        )
    finally:
        if sim is not None and sim.poll() is None:
            sim.terminate()
            try:
                sim.wait(60)
            except subprocess.TimeoutExpired:
                sim.kill()
        for service in reversed(services):
            service.stop()
        broker.stop()
    return out


# --- (c) silence -> device_offline ---------------------------------------------------------------------------------
async def part_c(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    interval, grace = 5.0, 2.0
    limit = interval + grace
    broker = start_broker(workdir / "c")
    settings = settings_for(
        workdir / "c",
        broker,
        heartbeat_interval_alarm_s=interval,
        heartbeat_grace_s=grace,
        supervision_period_s=0.2,
        area_outage_min_devices=100000,
    )
    n = args.silent_devices
    ids = device_ids(n, "silent")
    await register(settings, ids)
    await create_user(settings, OPERATOR, "operator", PASSWORD)
    seen: dict[str, float] = {}
    all_seen = asyncio.Event()
    async with AsyncExitStack() as stack:
        stack.callback(broker.stop)
        for name, port in (("receiver", settings.receiver_http_port), ("gateway", settings.gateway_http_port)):
            svc = ServiceProcess(name, settings, port, workdir / "c" / f"{name}.log", "INFO")
            stack.callback(svc.stop)
            await svc.wait_ready()
        api = await stack.enter_async_context(httpx.AsyncClient(base_url=settings.receiver_url, timeout=10))
        r = await api.post("/api/v1/auth/token", json={"username": OPERATOR, "password": PASSWORD})
        r.raise_for_status()
        api.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        ready = asyncio.Event()

        async def read_feed() -> None:
            async for event, line in feed_events(api):
                if event == "hello":
                    ready.set()
                elif event == "alarm":
                    data = json.loads(line)
                    if data.get("type") == "device_offline" and data["device_id"] not in seen:
                        seen[data["device_id"]] = time.time()
                        if len(seen) >= n:
                            all_seen.set()

        feed = asyncio.create_task(read_feed())
        stack.callback(feed.cancel)
        await asyncio.wait_for(ready.wait(), 10)
        swarm = Swarm(settings, n, "silent", heartbeat_interval_s=interval)
        await swarm.start()
        stack.push_async_callback(swarm.stop)
        await asyncio.sleep(interval + 1)  # every device heard at least twice: online and supervised
        silenced: dict[str, tuple[str, float, float]] = {}  # id -> (mode, last heartbeat, silenced at)
        order = list(swarm.devices.values())
        random.Random(1).shuffle(order)
        for i, device in enumerate(order):  # spread over one interval: random phase against the heartbeats
            await asyncio.sleep(interval / n)
            mode = "keep_connection" if i % 2 == 0 else "drop_connection"
            await device.go_silent(drop_connection=mode == "drop_connection")
            silenced[device.device_id] = (mode, device.last_heartbeat_at or 0.0, time.time())
        with suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), limit + 30)
    out: dict[str, Any] = {
        "devices": n,
        "settings": {
            "heartbeat_interval_alarm_s": interval,
            "heartbeat_grace_s": grace,
            "supervision_period_s": 0.2,
            "area_outage_min_devices": 100000,
        },
        "limit_s": limit,
    }
    for mode in ("keep_connection", "drop_connection"):
        mine = {d: v for d, v in silenced.items() if v[0] == mode}
        since_hb = [seen[d] - v[1] for d, v in mine.items() if d in seen]
        since_silence = [seen[d] - v[2] for d, v in mine.items() if d in seen]
        over = [x - limit for x in since_hb]
        out[mode] = {
            "silenced": len(mine),
            "alarms_seen": len(since_hb),
            "last_heartbeat_to_alarm": latency_summary(since_hb),
            "silenced_to_alarm": latency_summary(since_silence),
            "beyond_limit": latency_summary(over) if mode == "keep_connection" else None,
        }
    return out


# --- main --------------------------------------------------------------------------------------------------------
def ms(summary: dict[str, Any] | None, key: str) -> str:
    if not summary or key not in summary:
        return "-"
    return f"{summary[key]:,.0f}"


def report(result: dict[str, Any]) -> None:
    a, b, c = result.get("a"), result.get("b"), result.get("c")
    if a:
        g, raw = a["gateway"], a["raw_gmqtt"]
        print("\n(a) heartbeat ingest, QoS 0, raw-socket publisher, msg/s")
        print(
            table(
                ["subscriber", "msg/s", "CPU %", "published/s", "backlog"],
                [
                    ["gateway (heartbeats_total)", f"{g['heartbeats_per_s']:,}", g["gateway_cpu_pct"],
                     f"{g['published_per_s']:,}", g["backlog_at_end"]],
                    ["bare gmqtt (raw ceiling)", f"{raw.get('received_per_s', 0):,}",
                     raw.get("subscriber_cpu_pct", "-"), f"{raw.get('published_per_s', 0):,}",
                     raw.get("backlog_at_end", "-")],
                ],
            )
        )  # fmt: skip
        print(
            f"ratio {a['ratio']} (target >= {TARGET_RATIO}: {a['target_ratio_met']}); "
            f">= {TARGET_RATE:,}/s: {a['target_rate_met']}"
        )
    if b:
        print(f"\n(b) {b['devices']:,} devices, 60 s heartbeat, {b['minutes']} min (connect {b['connect_s']} s)")
        rows = [[k, b["cpu_pct"][k], b["rss_mb_end"][k], b["rss_mb_peak"][k]] for k in b["cpu_pct"]]
        print(table(["process", "CPU %", "RSS MB end", "RSS MB peak"], rows))
        print(
            f"heartbeats/s {b['heartbeats_per_s']} (expected {b['expected_heartbeats_per_s']}); "
            f"false offline alarms: {b['false_offline']} (queue: {b['alarms_in_queue_by_type']})"
        )
    if c:
        print(f"\n(c) silence -> device_offline on the live feed, {c['devices']} devices, limit {c['limit_s']} s")
        rows = []
        for mode in ("keep_connection", "drop_connection"):
            m = c[mode]
            for label, key in (("last heartbeat -> alarm", "last_heartbeat_to_alarm"), ("silenced -> alarm",
                               "silenced_to_alarm"), ("beyond the limit", "beyond_limit")):  # fmt: skip
                s = m.get(key)
                if s:
                    rows.append([mode, label, f"{m['alarms_seen']}/{m['silenced']}", ms(s, "p50_ms"),
                                 ms(s, "p99_ms"), ms(s, "max_ms")])  # fmt: skip
        print(table(["mode", "interval", "seen", "p50 ms", "p99 ms", "max ms"], rows))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="trygg-bench-fleet-"))
    print(f"workdir {workdir}", flush=True)
    result: dict[str, Any] = {
        "benchmark": "fleet",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "fs_file_max": Path("/proc/sys/fs/file-max").read_text().strip(),  # noqa: ASYNC240
        "workdir": str(workdir),
    }
    parts = "abc" if args.part == "all" else args.part
    for part, fn in (("a", part_a), ("b", part_b), ("c", part_c)):
        if part in parts:
            started = time.perf_counter()
            result[part] = await fn(args, workdir)
            result[part]["run_s"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="all", help="a, b, c, a combination such as ac, or all")
    parser.add_argument("--devices", type=int, default=20000, help="(b) simulated devices")
    parser.add_argument("--minutes", type=float, default=5.0, help="(b) how long")
    parser.add_argument("--flood-devices", type=int, default=5000, help="(a) registered device ids flooded")
    parser.add_argument("--seconds", type=float, default=10.0, help="(a) measured window")
    parser.add_argument("--window", type=int, default=100000, help="(a) max messages ahead of the subscriber")
    parser.add_argument("--silent-devices", type=int, default=50, help="(c) devices going silent")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fleet.json"))
    args = parser.parse_args()
    soft = raise_nofile(1 << 20)  # Mosquitto and the swarm processes inherit it
    print(f"RLIMIT_NOFILE soft {soft}, hard {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}", flush=True)
    result = asyncio.run(run(args))
    report(result)
    write_json(args.out, result)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
