"""Heartbeat ingest with two gateways on PostgreSQL sharing the device topics (issue 13's goal: >= 20,000/s).

    .venv/bin/python -m bench.ha_heartbeats [--devices 2000] [--seconds 10] [--out bench/results/ha_heartbeats.json]

A private Mosquitto, a fresh PostgreSQL database (admin DSN from ``TRYGG_TEST_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/postgres``, dropped afterwards), two ``trygg gateway`` processes
(``instance_name`` gw1/gw2, ``mqtt_shared_group`` trygg: the broker hands each heartbeat to one of them) and the
raw-socket QoS 0 flood publisher of ``bench/fleet.py`` (at most ``--window`` ahead of what the gateways counted).
The rate is the sum of both gateways' ``trygg_gateway_heartbeats_total`` over ``--seconds``. Afterwards, with the
flood stopped, every flooded device must be ``online`` in the leader's ``device_health``: the heartbeats the
follower received reached the leader through ``heartbeats_seen``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx

from bench._common import machine, write_json
from bench.alarm_latency import ServiceProcess, cpu_seconds
from bench.fleet import METRICS_TOKEN, flood, metric, register, start_broker, wait_metric
from devices import DeviceType
from testing.broker import free_port
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


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    name = f"trygg_bench_ha_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_admin())
    await admin.execute(f'CREATE DATABASE "{name}"')
    broker = start_broker(workdir)
    gateways: list[ServiceProcess] = []
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
        https = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.gateway_http_port}", timeout=10) for s in settings]
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
            target=flood,
            args=(broker.port, base.topic_root, [d for d, _ in ids], received, sent, stop, args.window),
            daemon=True,
        )
        pub.start()
        pids = [g.proc.pid for g in gateways]
        try:

            async def sample() -> tuple[float, float, list[float]]:
                count = await counted() - base_count
                received.value = int(count)
                return time.perf_counter(), count, [cpu_seconds(p) for p in pids]

            t_end = time.perf_counter() + 2.0
            while time.perf_counter() < t_end:  # warm-up
                await sample()
                await asyncio.sleep(0.05)
            t0, c0, cpu0 = await sample()
            while time.perf_counter() < t0 + args.seconds:
                await sample()
                await asyncio.sleep(0.05)
            t1, c1, cpu1 = await sample()
        finally:
            stop.set()
            pub.join(10)
        dt = t1 - t0
        per_gateway = [round(await metric(h, "trygg_gateway_heartbeats_total")) for h in https]

        async def online_count() -> int:
            conn = await asyncpg.connect(with_db(pg_admin(), name).replace("+asyncpg", ""))
            try:
                return int(await conn.fetchval("SELECT count(*) FROM device_health WHERE status = 'online'"))
            finally:
                await conn.close()

        async def all_online() -> bool:
            return await online_count() == args.devices

        try:
            await eventually(all_online, timeout=30, interval=0.5)
        except TimeoutError:
            pass  # reported: fewer than all
        online = await online_count()
        for h in https:
            await h.aclose()
        rate = round((c1 - c0) / dt)
        return {
            "devices": args.devices,
            "seconds": round(dt, 1),
            "heartbeats_per_s": rate,
            "per_gateway_total": per_gateway,
            "gateway_cpu_pct": [round(100 * (b - a) / dt) for a, b in zip(cpu0, cpu1, strict=True)],
            "online_in_leader_health": online,
            "target": TARGET,
            "target_met": rate >= TARGET,
        }
    finally:
        for gw in gateways:
            gw.stop()
        broker.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=100000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ha_heartbeats.json"))
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="trygg-bench-ha-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["machine"] = machine()
    r = result
    print(f"two gateways on PostgreSQL: {r['heartbeats_per_s']:,} heartbeats/s (target {TARGET:,}: ", end="")
    print(f"{'met' if r['target_met'] else 'NOT met'}); per gateway {r['per_gateway_total']}, ", end="")
    print(f"CPU {r['gateway_cpu_pct']} %; {r['online_in_leader_health']} of {r['devices']} online at the leader")
    write_json(args.out, result)


if __name__ == "__main__":
    main()
