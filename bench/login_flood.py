"""A login flood must not delay alarms (issue 8, point 5): alarm live-feed latency without and with a flood of bad
logins, measured in the same run.

A private Mosquitto, the receiver and the gateway (in this process), a few devices pressing alarms at a steady rate,
and an operator's live feed (SSE): latency is device publish -> the alarm's event in the live feed. One second runs
without a flood, then one with a burst of parallel bad logins (sent by a separate process), then settling ones, in
rounds, after warm-up windows. The bursts guess the operator's password (``--accounts one``: after the account's
limit every guess is refused before hashing) or, with ``--accounts per-burst``, each burst guesses another username
with the per-address limit lifted (an attacker with many addresses): every burst then has its logins hashed up to
the per-account limit, so alarms would wait if the hashing held them up. ``--unthrottled`` lifts the failed-login
limits altogether, so that every login reaches the hash threads (the worst case).

    .venv/bin/python -m bench.login_flood [--rounds 5] [--rate 20] [--burst 100] [--accounts one|per-burst]
        [--per-account N] [--unthrottled]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from bench._common import latency_summary, percentile
from devices import DeviceType
from testing.broker import Broker
from testing.harness import (
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


async def flood(url: str, burst: int) -> dict[str, int]:
    """One burst of ``burst`` parallel bad logins per line on stdin (the line: the username to guess), until stdin
    ends; the answers by status.

    Raw HTTP/1.1 over ``burst`` kept-alive connections: on one machine the attacker's own CPU competes with the
    services, so the client must cost next to nothing (httpx costs milliseconds per request)."""
    answers: Counter[str] = Counter()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conns = [await asyncio.open_connection(host, port) for _ in range(burst)]
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def one(i: int, username: str) -> None:
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
    while line := await reader.readline():
        username = line.decode().strip() or OPERATOR
        bursts.append(asyncio.gather(*(one(i, username) for i in range(len(conns)))))
        await bursts[-1]  # a connection carries one request at a time
    for _, writer in conns:
        writer.close()
    return dict(answers)


Condition = Literal["warm-up", "baseline", "flood", "settle"]
WARM_UP_WINDOWS = 3  # not counted: connections, caches, the first commits, the first burst's hashing
SETTLE_WINDOWS = 1  # after each flood window, not counted: one burst's work cannot spill into a baseline window


@dataclass
class Window:
    """One second of alarms under one condition; ``latencies`` in seconds."""

    condition: Condition
    number: int
    latencies: list[float] = field(default_factory=list)

    def p90_ms(self) -> float:
        return percentile(sorted(self.latencies), 90) * 1000


def _plan(rounds: int) -> list[Condition]:
    """Warm-up windows, then rounds of a baseline window, a flood window and settling windows. Interleaving the two
    conditions makes the comparison fair on a machine whose other load changes while the test runs."""
    warm_up: list[Condition] = ["warm-up"]
    settle: list[Condition] = ["settle"]
    one_round: list[Condition] = ["baseline", "flood", *settle * SETTLE_WINDOWS]
    return warm_up * WARM_UP_WINDOWS + one_round * rounds


async def _windows(
    devices: list[RawDevice],
    feed: LiveFeedReader,
    flooder: asyncio.subprocess.Process,
    rounds: int,
    rate: float,
    accounts: Literal["one", "per-burst"],
) -> list[Window]:
    """Alarms at ``rate`` per second through every window of the plan; a burst of bad logins at the start of each
    flood window and of the first warm-up window (which, with ``accounts="one"``, takes the account to its limit)."""
    windows = [Window(condition, n) for n, condition in enumerate(_plan(rounds))]
    sent: dict[str, tuple[Window, float]] = {}
    per_window = int(rate)
    total = per_window * len(windows)
    done = asyncio.Event()
    bursts = 0

    by_device: dict[str, list[str]] = {}  # each device's alarm ids in the order they were sent

    async def collect() -> None:
        got = 0
        while got < total:
            event, data = await feed.events.get()
            if event != "alarm" or data.get("state") != "new":
                continue
            # A device's alarms of one type while its first is open are collapsed into that item (issue 8): an
            # item showing ``repeats`` r has the device's first r + 1 alarms, each seen when it first showed it.
            shown = by_device.get(str(data.get("device_id")), [])[: 1 + int(data.get("repeats") or 0)]
            for key in shown:
                if key not in sent:
                    continue
                window, at = sent.pop(key)
                window.latencies.append(time.perf_counter() - at)
                if os.environ.get("FLOOD_DEBUG"):
                    print(key, window.condition, round((time.perf_counter() - at) * 1000), file=sys.stderr)
                got += 1
        done.set()

    collector = asyncio.create_task(collect())
    start = time.perf_counter()
    assert flooder.stdin is not None
    for i in range(total):
        window = windows[i // per_window]
        if i % per_window == 0 and (window.condition == "flood" or i == 0):
            username = OPERATOR if accounts == "one" else f"guess-{bursts:03d}"  # guess-nnn: no such account
            flooder.stdin.write(f"{username}\n".encode())
            await flooder.stdin.drain()
            bursts += 1
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        alarm_id = f"w{window.number}-{i}"
        body = {"alarm_id": alarm_id, "type": "assistance", "ts": datetime.now(UTC).isoformat()}
        device = devices[i % len(devices)]
        by_device.setdefault(device.device_id, []).append(alarm_id)
        sent[alarm_id] = (window, time.perf_counter())
        device.publish("alarm", body)
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        collector.cancel()
    return windows


async def measure(
    workdir: Path,
    *,
    rounds: int = 5,
    rate: float = 20.0,
    burst: int = 100,
    accounts: Literal["one", "per-burst"] = "one",
    per_account: int | None = None,
    unthrottled: bool = False,
) -> dict[str, Any]:
    """Latency without and with the flood: pooled (``baseline``, ``flood``) and each window's p90
    (``window_p90_ms``: a machine's hiccup hits one window, the median over the rounds is robust to it)."""
    broker = Broker(workdir=workdir / "mosquitto")
    broker.start()
    limits: dict[str, int] = {}
    if accounts == "per-burst":
        limits["login_fail_per_address"] = 10**9  # many addresses: no guard at the edge, each burst hashes
    if per_account is not None:
        limits["login_fail_per_account"] = per_account
    if unthrottled:
        limits = {"login_fail_per_account": 10**9, "login_fail_per_address": 10**9}
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
                    windows = await _windows(devices, feed, flooder, rounds, rate, accounts)
            finally:
                assert flooder.stdin is not None
                flooder.stdin.close()
                out, _ = await asyncio.wait_for(flooder.communicate(), 120)
                for device in devices:
                    await device.__aexit__()
                await api.close()
    finally:
        broker.stop()
    pooled = {c: [x for w in windows if w.condition == c for x in w.latencies] for c in ("baseline", "flood")}
    base, flood_ = latency_summary(pooled["baseline"]), latency_summary(pooled["flood"])
    p90s = {c: [round(w.p90_ms(), 1) for w in windows if w.condition == c] for c in ("baseline", "flood")}
    return {
        "rounds": rounds,
        "rate_per_s": rate,
        "burst": burst,
        "bursts": 1 + rounds,
        "accounts": accounts,
        "limits": limits,
        "baseline": base,
        "flood": flood_,
        "p99_ratio": round(float(flood_["p99_ms"]) / max(float(base["p99_ms"]), 1e-9), 2),
        "window_p90_ms": p90s,
        "median_window_p90_ms": {c: round(statistics.median(v), 1) for c, v in p90s.items()},
        "logins": json.loads(out.decode() or "{}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of 1 s without, 1 s with a burst, 1 s settling")
    parser.add_argument("--rate", type=float, default=20.0, help="alarms per second")
    parser.add_argument("--burst", type=int, default=100, help="parallel bad logins per burst")
    parser.add_argument("--accounts", choices=["one", "per-burst"], default="one", help="whose password is guessed")
    parser.add_argument("--per-account", type=int, default=None, help="failed logins per username (default: 10)")
    parser.add_argument("--unthrottled", action="store_true", help="lift the failed-login limits (worst case)")
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)  # the flooding child process
    args = parser.parse_args()
    if args.flood:
        print(json.dumps(asyncio.run(flood(args.flood, args.burst))))
        return
    with tempfile.TemporaryDirectory(prefix="trygg-login-flood-") as tmp:
        result = asyncio.run(
            measure(
                Path(tmp),
                rounds=args.rounds,
                rate=args.rate,
                burst=args.burst,
                accounts=args.accounts,
                per_account=args.per_account,
                unthrottled=args.unthrottled,
            )
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
