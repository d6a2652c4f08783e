"""Leader takeover with two gateways on PostgreSQL: SIGKILL the leader, time until the other runs the deadlines.

    .venv/bin/python -m bench.ha_takeover [--rounds 3] [--devices 200] [--out bench/results/ha_takeover.json]

A private Mosquitto, a fresh PostgreSQL database (admin DSN from ``TRYGG_TEST_PG_DSN``), two ``trygg gateway``
processes sharing the device topics (``mqtt_shared_group``) with the product's election settings
(``leader_check_s`` 1 s, ``leader_ttl_s`` 5 s: takeover bound ``check_s + 3 * check_s`` = 4 s after a kill, plus
one supervision tick) and short supervision times so a run takes a minute: heartbeat interval ``--interval`` (2 s),
grace 1 s (deadline 3 s after the last heartbeat), supervision tick 0.2 s; the takeover's unknown window is the
product's (``Settings.takeover_window_s``: 14 s with the 10 s gateway keep-alive), or ``--grace`` seconds.
``--devices`` devices send a heartbeat every ``--period`` (1 s) through one raw MQTT connection of this process
(QoS 0, the broker hands each to one of the gateways).

Each round: find the leader (the holder of the advisory lock, from ``pg_locks``), silence one extra device
``--silent-before`` (0.5 s) before the kill, SIGKILL the leader's process, then read the survivor's
``trygg_gateway_leader_takeovers_total`` every 20 ms: the **takeover time** is from the kill until it went up
(the survivor holds the lock, waited out the old leader's validity and ran its first supervision tick with the
shared state). With heartbeats going on for the unknown window plus two deadlines, the round then counts
``device_offline`` alarms in ``intake_alarms``: **false** ones (a device that kept sending) must be 0, and the
silenced device must have exactly one (no missed deadline), whose delay from its last heartbeat is reported
beside its deadline (3 s; a device silent at a takeover is judged at its own deadline from the end of the unknown
window, i.e. about ``--silent-before`` + up to ``leader_check_s`` + the window after its own deadline). The
killed gateway is started again (a follower) for the next round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import tempfile
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import httpx

from bench._common import machine, write_json
from bench.alarm_latency import ServiceProcess
from bench.fleet import METRICS_TOKEN, metric, register, start_broker, wait_metric
from bench.ha_heartbeats import fresh_database, pg_admin, with_db
from devices import DeviceType
from firmware_sim.swarm import _packet, _utf8, publish_packet
from testing.broker import Broker, free_port
from testing.harness import make_settings
from testing.wait import eventually
from trygg.settings import Settings

TAKEOVERS = "trygg_gateway_leader_takeovers_total"


class Heartbeats:
    """Every ``period`` a heartbeat for each device in ``alive``, on one raw MQTT 3.1.1 connection (QoS 0)."""

    def __init__(self, port: int, root: str, devices: list[str], period: float) -> None:
        self.port, self.root, self.period = port, root, period
        self.alive = set(devices)
        self.last_sent: dict[str, float] = {}  # device -> wall-clock time of its last heartbeat
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def silence(self, device_id: str) -> float:
        """Stop ``device_id``'s heartbeats; returns the wall-clock time of its last one."""
        with self._lock:
            self.alive.discard(device_id)
            return self.last_sent.get(device_id, 0.0)

    def _run(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(_packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c" + _utf8(f"bench-beats-{os.getpid()}")))
        if sock.recv(4)[:1] != b"\x20":
            raise RuntimeError("heartbeats: no CONNACK")
        next_round = time.monotonic()
        while not self._stop.is_set():
            ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            body = f'{{"ts":"{ts}","battery_pct":80,"mains":false}}'.encode()
            with self._lock:
                devices = sorted(self.alive)
                packets = b"".join(publish_packet(f"{self.root}/devices/{d}/heartbeat", body) for d in devices)
                sock.sendall(packets)
                now = time.time()
                for d in devices:
                    self.last_sent[d] = now
            next_round += self.period
            self._stop.wait(max(0.0, next_round - time.monotonic()))
        with suppress(OSError):
            sock.sendall(b"\xe0\x00")
            sock.close()


async def leader_name(conn: asyncpg.Connection) -> str | None:
    """The instance holding the gateway's leader lock (its election session's application_name)."""
    name = await conn.fetchval(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'trygg.gateway.leader:%'"
        " AND a.datname = current_database()"
    )
    return None if name is None else str(name).rsplit(":", 1)[1]


async def offline_alarms(conn: asyncpg.Connection) -> list[tuple[str, datetime]]:
    rows = await conn.fetch("SELECT device_id, stored_at FROM intake_alarms WHERE type = 'device_offline'")
    return [(r["device_id"], r["stored_at"]) for r in rows]


async def find_leader(conn: asyncpg.Connection, https: dict[str, httpx.AsyncClient], online: int) -> str:
    """The leader, once it has run its supervision and ``online`` devices are online in its flushed state."""

    async def ready() -> str | None:
        leader = await leader_name(conn)
        if leader is None or await metric(https[leader], TAKEOVERS) < 1:
            return None
        count = await conn.fetchval("SELECT count(*) FROM device_health WHERE status = 'online'")
        return leader if count == online else None

    found: str | None = await eventually(ready, timeout=60, interval=0.2)
    assert found is not None
    return found


async def kill_round(
    args: argparse.Namespace,
    conn: asyncpg.Connection,
    https: dict[str, httpx.AsyncClient],
    process: ServiceProcess,
    leader: str,
    beats: Heartbeats,
    silenced: str,
    limit_s: float,
) -> dict[str, Any]:
    survivor = next(i for i in https if i != leader)
    before = await metric(https[survivor], TAKEOVERS)
    last_beat = beats.silence(silenced)
    await asyncio.sleep(args.silent_before)  # the silenced device's deadline passes during the takeover
    os.kill(process.proc.pid, signal.SIGKILL)
    t_kill, wall_kill = time.monotonic(), time.time()
    process.proc.wait(10)
    process.log.close()

    async def took_over() -> bool:
        with suppress(httpx.HTTPError):
            return await metric(https[survivor], TAKEOVERS) > before
        return False

    await eventually(took_over, timeout=60, interval=0.02)
    takeover_s = time.monotonic() - t_kill
    # Heartbeats go on past the grace and two deadlines: any device_offline but a silenced device's is false.
    wait_until = time.monotonic() + args.window + 2 * limit_s + 1.0

    async def settled() -> bool:
        raised = any(d == silenced for d, _ in await offline_alarms(conn))
        return raised and time.monotonic() >= wait_until

    with suppress(TimeoutError):
        await eventually(settled, timeout=args.window + 60, interval=0.1)
    alarms = await offline_alarms(conn)
    false = [d for d, _ in alarms if not d.startswith("silent-")]
    raised = [t for d, t in alarms if d == silenced]
    return {
        "killed": leader,
        "takeover_s": round(takeover_s, 2),
        "false_offline_alarms": len(false),
        "silenced_device_alarms": len(raised),
        "silenced_alarm_after_last_heartbeat_s": round(raised[0].timestamp() - last_beat, 2) if raised else None,
        "silenced_alarm_after_own_deadline_s": (
            round(raised[0].timestamp() - last_beat - limit_s, 2) if raised else None
        ),
        "silenced_alarm_after_kill_s": round(raised[0].timestamp() - wall_kill, 2) if raised else None,
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    async with fresh_database("trygg_bench_takeover") as name:
        return await _run(args, workdir, name)


async def _run(args: argparse.Namespace, workdir: Path, name: str) -> dict[str, Any]:
    broker: Broker = start_broker(workdir)
    gateways: dict[str, ServiceProcess] = {}
    beats: Heartbeats | None = None
    db: asyncpg.Connection | None = None
    limit_s = args.interval + 1.0
    try:
        base = make_settings(
            workdir,
            broker.url,
            metrics_token=METRICS_TOKEN,
            gateway_database_url=with_db(pg_admin(), name),
            mqtt_shared_group="trygg",
            heartbeat_interval_alarm_s=args.interval,
            heartbeat_grace_s=1.0,
            supervision_period_s=0.2,
            online_settle_s=0.0,
            area_outage_min_devices=100_000,  # each silent device its own alarm
            leader_takeover_grace_s=args.grace,
        )
        args.window = base.takeover_window_s()
        devices = [f"beat-{i:04d}" for i in range(args.devices)]
        silent = [f"silent-{r}" for r in range(args.rounds)]
        await register(base, [(d, DeviceType.PENDANT) for d in devices + silent])
        settings: dict[str, Settings] = {
            f"gw{n}": base.model_copy(update={"instance_name": f"gw{n}", "gateway_http_port": free_port()})
            for n in (1, 2)
        }

        def start(instance: str) -> ServiceProcess:
            s = settings[instance]
            log = workdir / f"{instance}.log"
            gateways[instance] = ServiceProcess("gateway", s, s.gateway_http_port, log, "INFO")
            return gateways[instance]

        https = {
            i: httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.gateway_http_port}", timeout=5)
            for i, s in settings.items()
        }
        for instance in settings:
            await start(instance).wait_ready()
            await wait_metric(https[instance], "trygg_gateway_mqtt_connected", 1)
        beats = Heartbeats(broker.port, base.topic_root, devices + silent, args.period)
        beats.start()
        db = await asyncpg.connect(with_db(pg_admin(), name).replace("+asyncpg", ""))
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            leader = await find_leader(db, https, len(devices) + len(silent) - r)
            rounds.append(await kill_round(args, db, https, gateways[leader], leader, beats, silent[r], limit_s))
            print(f"round {r + 1}: killed {leader}; {rounds[-1]}", flush=True)
            await start(leader).wait_ready()  # back, as a follower
            await wait_metric(https[leader], "trygg_gateway_mqtt_connected", 1)
        for h in https.values():
            await h.aclose()
        takeovers = [x["takeover_s"] for x in rounds]
        return {
            "devices": args.devices,
            "heartbeat_period_s": args.period,
            "deadline_s": limit_s,
            "leader_check_s": base.leader_check_s,
            "takeover_bound_s": 4 * base.leader_check_s + base.supervision_period_s,
            "takeover_window_s": args.window,
            "rounds": rounds,
            "takeover_s": {
                "min": min(takeovers),
                "median": statistics.median(takeovers),
                "max": max(takeovers),
            },
            "false_offline_alarms": sum(x["false_offline_alarms"] for x in rounds),
            "missed_deadlines": sum(x["silenced_device_alarms"] != 1 for x in rounds),
        }
    finally:
        if beats is not None:
            beats.stop()
        if db is not None:
            await db.close()
        for gw in gateways.values():
            gw.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--interval", type=float, default=2.0, help="heartbeat_interval_alarm_s (deadline + 1 s)")
    parser.add_argument("--period", type=float, default=1.0, help="how often the devices send")
    parser.add_argument("--grace", type=float, default=None, help="leader_takeover_grace_s (default: worked out, 14 s)")
    parser.add_argument("--silent-before", type=float, default=0.5, help="the silenced device's last beat")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ha_takeover.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trygg-bench-takeover-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["machine"] = machine()
    result["load_average"] = os.getloadavg()[0]
    t = result["takeover_s"]
    print(f"takeover after SIGKILL of the leader: {t['min']}-{t['max']} s (median {t['median']}), ", end="")
    print(f"bound {result['takeover_bound_s']} s; false offline alarms {result['false_offline_alarms']}, ", end="")
    print(f"missed deadlines {result['missed_deadlines']}; load average {result['load_average']:.1f}")
    write_json(args.out, result)


if __name__ == "__main__":
    main()
