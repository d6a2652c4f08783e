"""Heartbeat ingest with two gateways on PostgreSQL sharing the device topics (issue 13's goal: >= 20,000/s).

    .venv/bin/python -m bench.ha_heartbeats [--devices 2000] [--seconds 10] [--window 20000] [--no-single]

A private Mosquitto, a fresh PostgreSQL database (admin DSN from ``TRYGG_TEST_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, dropped afterwards), two ``trygg gateway`` processes
(``instance_name`` gw1/gw2, ``mqtt_shared_group`` trygg: the broker hands each heartbeat to one of them) and the
raw-socket QoS 0 flood publisher of ``bench/fleet.py`` (at most ``--window`` ahead of what the gateways counted).
The rate is the sum of both gateways' ``trygg_gateway_heartbeats_total`` over ``--seconds``. Afterwards, with the
flood stopped, every flooded device must be ``online`` in the leader's ``device_health``: the heartbeats the
follower received reached the leader through ``heartbeats_seen``. With ``--single`` (the default), the same
publisher and devices then flood one gateway on SQLite (the single-machine default) in the same run: the figure
to compare with. Besides the rate it reports what was published, the backlog at the end (at ``--window`` the
publisher waited for the gateways), and the CPU of the gateways, Mosquitto and this process (the publisher).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx

from bench._common import machine, write_json
from bench.alarm_latency import ServiceProcess, cpu_seconds
from bench.fleet import METRICS_TOKEN, flood, metric, register, start_broker, wait_metric
from devices import DeviceType
from testing.broker import Broker, free_port
from testing.harness import make_settings
from testing.wait import eventually

TARGET = 20_000


class Counter:
    value = 0


def pg_admin() -> str:
    return os.environ.get("TRYGG_TEST_PG_DSN") or "postgresql://postgres@127.0.0.1:5432/postgres"


def with_db(dsn: str, name: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit(("postgresql+asyncpg", p.netloc, f"/{name}", p.query, p.fragment))


@asynccontextmanager
async def fresh_database(prefix: str) -> AsyncIterator[str]:
    """A new PostgreSQL database for one run (created through ``pg_admin()``), dropped afterwards; yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def measure(
    args: argparse.Namespace, broker: Broker, root: str, ids: list[str], gateways: list[ServiceProcess]
) -> dict[str, Any]:
    """Flood ``ids`` at the running ``gateways`` (each ready, its port in ``gateway.port``) and count."""
    https = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{g.port}", timeout=10) for g in gateways]
    try:
        for gw, http in zip(gateways, https, strict=True):
            await gw.wait_ready()
            await wait_metric(http, "trygg_gateway_mqtt_connected", 1)
        await asyncio.sleep(1.0)  # the subscriptions follow the connect

        async def counted() -> float:
            return sum([await metric(h, "trygg_gateway_heartbeats_total") for h in https])

        # The publisher in a thread of this process (it only writes to a socket; the gateways are processes of
        # their own): multiprocessing's shared values need /dev/shm semaphores, which some machines refuse.
        received, sent, stop = Counter(), Counter(), threading.Event()
        base_count = await counted()
        pub = threading.Thread(
            target=flood, args=(broker.port, root, ids, received, sent, stop, args.window), daemon=True
        )
        pub.start()
        pids = [g.proc.pid for g in gateways]
        try:

            async def sample() -> tuple[float, float, list[float]]:
                count = await counted() - base_count
                received.value = int(count)
                return time.perf_counter(), count, [cpu_seconds(p) for p in pids]

            def others() -> tuple[int, float, float]:
                return sent.value, cpu_seconds(broker.proc.pid if broker.proc else 0), cpu_seconds(os.getpid())

            t_end = time.perf_counter() + 2.0
            while time.perf_counter() < t_end:  # warm-up
                await sample()
                await asyncio.sleep(0.05)
            t0, c0, cpu0 = await sample()
            o0 = others()
            while time.perf_counter() < t0 + args.seconds:
                await sample()
                await asyncio.sleep(0.05)
            t1, c1, cpu1 = await sample()
            o1 = others()
        finally:
            stop.set()
            pub.join(10)
        dt = t1 - t0
        rate = round((c1 - c0) / dt)
        gateway_cpu_s = sum(b - a for a, b in zip(cpu0, cpu1, strict=True))
        return {
            "seconds": round(dt, 1),
            "heartbeats_per_s": rate,
            "per_gateway_total": [round(await metric(h, "trygg_gateway_heartbeats_total")) for h in https],
            "gateway_cpu_pct": [round(100 * (b - a) / dt) for a, b in zip(cpu0, cpu1, strict=True)],
            # CPU the gateways spent per heartbeat: what a loaded machine changes least (it slows, not costs)
            "gateway_cpu_us_per_heartbeat": round(1e6 * gateway_cpu_s / max(1.0, c1 - c0), 1),
            "published_per_s": round((o1[0] - o0[0]) / dt),
            "backlog_at_end": o1[0] - round(c1),
            "mosquitto_cpu_pct": round(100 * (o1[1] - o0[1]) / dt),
            "bench_cpu_pct": round(100 * (o1[2] - o0[2]) / dt),
        }
    finally:
        for h in https:
            await h.aclose()


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    async with fresh_database("trygg_bench_ha") as name:
        return await _run(args, workdir, name)


async def _run(args: argparse.Namespace, workdir: Path, name: str) -> dict[str, Any]:
    broker = start_broker(workdir)
    gateways: list[ServiceProcess] = []
    out: dict[str, Any] = {"devices": args.devices, "target": TARGET}
    try:
        base = make_settings(
            workdir,
            broker.url,
            metrics_token=METRICS_TOKEN,
            gateway_database_url=with_db(pg_admin(), name),
            mqtt_shared_group="trygg",
            heartbeat_interval_alarm_s=600,  # no deadline passes during the run
        )
        ids = [(f"flood-{i:05d}", DeviceType.PENDANT) for i in range(args.devices)]
        await register(base, ids)
        settings = [
            base.model_copy(update={"instance_name": f"gw{n}", "gateway_http_port": free_port()}) for n in (1, 2)
        ]
        for s in settings:
            gateways.append(
                ServiceProcess("gateway", s, s.gateway_http_port, workdir / f"{s.instance_name}.log", "INFO")
            )
        two = await measure(args, broker, base.topic_root, [d for d, _ in ids], gateways)

        conn = await asyncpg.connect(with_db(pg_admin(), name).replace("+asyncpg", ""))

        async def online_count() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM device_health WHERE status = 'online'"))

        async def all_online() -> bool:
            return await online_count() == args.devices

        try:
            await eventually(all_online, timeout=30, interval=0.5)
        except TimeoutError:
            pass  # reported: fewer than all
        finally:
            two["online_in_leader_health"] = await online_count()
            await conn.close()
        two["target_met"] = two["heartbeats_per_s"] >= TARGET
        out["two_gateways_postgresql"] = two
        for gw in gateways:
            gw.stop()
        gateways = []
        if args.single:
            # The floor in the same run: one gateway on SQLite (the single-machine default), same broker,
            # publisher and devices.
            single = make_settings(workdir / "single", broker.url, metrics_token=METRICS_TOKEN)
            single = single.model_copy(update={"heartbeat_interval_alarm_s": 600})
            await register(single, ids)
            gateways.append(ServiceProcess("gateway", single, single.gateway_http_port, workdir / "single.log", "INFO"))
            out["one_gateway_sqlite"] = await measure(args, broker, single.topic_root, [d for d, _ in ids], gateways)
        return out
    finally:
        for gw in gateways:
            gw.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=100000)
    parser.add_argument(
        "--single", action=argparse.BooleanOptionalAction, default=True, help="also one gateway on SQLite, same run"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/ha_heartbeats.json"))
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="trygg-bench-ha-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["machine"] = machine()
    result["load_average"] = os.getloadavg()[0]
    for label, key in (
        ("two gateways on PostgreSQL", "two_gateways_postgresql"),
        ("one gateway on SQLite", "one_gateway_sqlite"),
    ):
        r = result.get(key)
        if r is None:
            continue
        print(f"{label}: {r['heartbeats_per_s']:,} heartbeats/s; per gateway {r['per_gateway_total']}, ", end="")
        print(f"CPU {r['gateway_cpu_pct']} % = {r['gateway_cpu_us_per_heartbeat']} us/heartbeat; ", end="")
        print(f"published {r['published_per_s']:,}/s, backlog {r['backlog_at_end']:,}; ", end="")
        print(f"Mosquitto CPU {r['mosquitto_cpu_pct']} %, bench CPU {r['bench_cpu_pct']} %")
    two = result["two_gateways_postgresql"]
    print(f"target {TARGET:,}/s with two gateways: {'met' if two['target_met'] else 'NOT met'}; ", end="")
    online = f"{two['online_in_leader_health']} of {result['devices']}"
    print(f"{online} online at the leader; load average {result['load_average']:.1f}")
    write_json(args.out, result)


if __name__ == "__main__":
    main()
