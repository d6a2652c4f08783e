"""A login flood must not delay alarms (issue 8, point 5): alarm live-feed latency without and with a flood of bad
logins, measured in the same run.

A private Mosquitto, the receiver and the gateway (in this process), a few devices pressing alarms at a steady rate,
and an operator's live feed (SSE): latency is device publish -> the alarm's event in the live feed. One second runs
without a flood, then one with a burst of parallel bad logins (wrong passwords for an existing account, sent by a
separate process), then one to settle, in rounds. ``--unthrottled`` lifts the failed-login limits, so that every login
reaches the hash threads: the worst case for the alarm path (an attacker with many addresses and usernames).

    .venv/bin/python -m bench.login_flood [--rounds 5] [--rate 20] [--burst 100] [--unthrottled]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench._common import latency_summary
from devices import DeviceType
from tests.broker import Broker
from tests.harness import (
    Api,
    LiveFeedReader,
    RawDevice,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)

DEVICES = [f"flood-dev-{i}" for i in range(4)]
OPERATOR = "bench-operator"
ROOT = str(Path(__file__).resolve().parent.parent)
PASSWORD = "bench-password-1"


async def flood(url: str, username: str, burst: int) -> dict[str, int]:
    """One burst of ``burst`` parallel bad logins per line on stdin, until stdin ends; the answers by status.

    Raw HTTP/1.1 over ``burst`` kept-alive connections: on one machine the attacker's own CPU competes with the
    services, so the client must cost next to nothing (httpx costs milliseconds per request)."""
    answers: Counter[str] = Counter()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conns = [await asyncio.open_connection(host, port) for _ in range(burst)]
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def one(i: int) -> None:
        body = json.dumps({"username": username, "password": secrets.token_urlsafe(12)}).encode()
        head = f"POST /api/v1/auth/token HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        request = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        for _ in range(2):  # the server may have closed an idle keep-alive connection: open a new one, once
            conns[i][1].write(request)
            first = await conns[i][0].readline()
            if first:
                break
            conns[i] = await asyncio.open_connection(host, port)
        status = first.split()[1].decode()
        length = 0
        while (line := await conns[i][0].readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await conns[i][0].readexactly(length)
        answers[status] += 1

    bursts: list[asyncio.Future[list[None]]] = []
    while await reader.readline():
        bursts.append(asyncio.gather(*(one(i) for i in range(len(conns)))))
        await bursts[-1]  # a connection carries one request at a time
    for _, writer in conns:
        writer.close()
    return dict(answers)


async def _windows(
    devices: list[RawDevice], feed: LiveFeedReader, flooder: asyncio.subprocess.Process, rounds: int, rate: float
) -> dict[str, list[float]]:
    """Two warm-up windows (one burst at the start), then rounds of three 1 s windows: without a flood, with a burst
    of bad logins at its start, and a settling window (not counted) so that one burst's work cannot spill into the
    next window without one. Interleaving the two
    conditions makes the comparison fair on a machine whose other load changes while the test runs."""
    sent: dict[str, tuple[str, float]] = {}
    latencies: dict[str, list[float]] = {"baseline": [], "flood": [], "settle": [], "warm-up": []}
    per_window = int(rate)
    warm_up = 2 * per_window  # two windows first, not counted: connections, caches, the first commits
    total = warm_up + int(rounds * 3 * rate)
    done = asyncio.Event()

    async def collect() -> None:
        got = 0
        while got < total:
            event, data = await feed.events.get()
            key = str(data.get("alarm_id"))
            if event == "alarm" and data.get("state") == "new" and key in sent:
                condition, at = sent.pop(key)
                latencies[condition].append(time.perf_counter() - at)
                if os.environ.get("FLOOD_DEBUG"):
                    print(key, round((time.perf_counter() - at) * 1000), file=sys.stderr)
                got += 1
        done.set()

    collector = asyncio.create_task(collect())
    start = time.perf_counter()
    assert flooder.stdin is not None
    for i in range(total):
        window = (i - warm_up) // per_window
        condition = "warm-up" if i < warm_up else ("baseline", "flood", "settle")[window % 3]
        # the first burst comes in the warm-up: its logins are checked (hashed) until the limits are reached, the
        # measured bursts are the flood as it goes on (--unthrottled: every one of them is hashed)
        if (condition == "flood" and i % per_window == 0) or i == 0:
            flooder.stdin.write(b"burst\n")
            await flooder.stdin.drain()
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        alarm_id = f"w{window}-{i}"
        body = {"alarm_id": alarm_id, "type": "assistance", "ts": datetime.now(UTC).isoformat()}
        sent[alarm_id] = (condition, time.perf_counter())
        devices[i % len(devices)].publish("alarm", body)
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        collector.cancel()
    return latencies


async def measure(
    workdir: Path, *, rounds: int = 5, rate: float = 20.0, burst: int = 100, unthrottled: bool = False
) -> dict[str, Any]:
    broker = Broker(workdir=workdir / "mosquitto")
    broker.start()
    limits = {"login_fail_per_account": 10**9, "login_fail_per_address": 10**9} if unthrottled else {}
    settings = make_settings(workdir, broker.url, log_level="WARNING", **limits)
    try:
        await prepare_stores(settings, dict.fromkeys(DEVICES, DeviceType.PENDANT))
        await create_user(settings, OPERATOR, "operator", PASSWORD)
        async with running_receiver(settings), running_gateway(settings):
            api = Api(settings)
            await api.login(OPERATOR, PASSWORD)
            devices = [await RawDevice(settings, d).__aenter__() for d in DEVICES]
            flooder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.login_flood",
                "--flood",
                settings.receiver_url,
                "--burst",
                str(burst),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": ROOT},
            )
            try:
                async with LiveFeedReader(api) as feed:
                    latencies = await _windows(devices, feed, flooder, rounds, rate)
            finally:
                assert flooder.stdin is not None
                flooder.stdin.close()
                out, _ = await asyncio.wait_for(flooder.communicate(), 120)
                for device in devices:
                    await device.__aexit__()
                await api.close()
    finally:
        broker.stop()
    base, flood_ = latency_summary(latencies["baseline"]), latency_summary(latencies["flood"])
    return {
        "rounds": rounds,
        "rate_per_s": rate,
        "burst": burst,
        "unthrottled": unthrottled,
        "baseline": base,
        "flood": flood_,
        "p99_ratio": round(float(flood_["p99_ms"]) / max(float(base["p99_ms"]), 1e-9), 2),
        "logins": json.loads(out.decode() or "{}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 1 s without, 1 s with a burst, 1 s settling")
    parser.add_argument("--rate", type=float, default=20.0, help="alarms per second")
    parser.add_argument("--burst", type=int, default=100, help="parallel bad logins per burst")
    parser.add_argument("--unthrottled", action="store_true", help="lift the failed-login limits (worst case)")
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)  # the flooding child process
    args = parser.parse_args()
    if args.flood:
        print(json.dumps(asyncio.run(flood(args.flood, OPERATOR, args.burst))))
        return
    with tempfile.TemporaryDirectory(prefix="trygg-login-flood-") as tmp:
        result = asyncio.run(
            measure(Path(tmp), rounds=args.rounds, rate=args.rate, burst=args.burst, unthrottled=args.unthrottled)
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
