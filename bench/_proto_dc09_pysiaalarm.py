"""pysiaalarm's DC-09 receiver (PyPI) under the same dialler load as Trygg's (bench/_dc09_load.py).

pysiaalarm answers ACK before its handler runs; the handler here "stores" by appending to a list in memory (no
durability at all: the peer's best case). It runs as its own process (``--serve``), like ``trygg gateway`` in
bench/_proto_dc09.py, and reports on SIGTERM how many events its handler got and how many were repeats.

    .venv/bin/python -m bench._proto_dc09_pysiaalarm [--alarms 500] [--rate 50] [--units 10] \
        [--out bench/results/proto_dc09_pysiaalarm.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from bench._dc09_load import account_of, drive, report
from bench._proto_common import Figures, Load
from testing.broker import free_port

NAME = "dc09 pysiaalarm (ACK before handler)"


async def serve(port: int, units: int) -> None:
    from pysiaalarm import SIAAccount
    from pysiaalarm.aio import CommunicationsProtocol, SIAClient

    events: list[tuple[str, str]] = []

    async def handler(event: Any) -> None:
        if str(getattr(event, "message_type", "")).endswith("NULL"):
            return  # the warm-up's link tests
        events.append((str(event.account), str(event.sequence)))

    accounts = [SIAAccount(account_of(i), None) for i in range(units)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    client = SIAClient("127.0.0.1", port, accounts, handler, protocol=CommunicationsProtocol.TCP)
    await client.async_start()
    print("ready", flush=True)
    await stop.wait()
    await client.async_stop()
    print(json.dumps({"events": len(events), "unique": len(set(events))}), flush=True)


async def run(load: Load) -> Figures:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._proto_dc09_pysiaalarm",
        "--serve",
        str(port),
        "--units",
        str(load.units),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip() == "ready"
        result = await drive(load, port, pids={"pysiaalarm": proc.pid})
    finally:
        proc.send_signal(signal.SIGTERM)
        out_bytes, _ = await asyncio.wait_for(proc.communicate(), 30)
    out = out_bytes.decode()
    counts = json.loads(out.strip().splitlines()[-1])
    seconds = max(result.last - result.first, 1e-9)
    return Figures(
        name=NAME,
        sent=result.sent,
        answered=result.answered,
        stored=counts["unique"],
        duplicates=counts["events"] - counts["unique"],
        seconds=round(seconds, 3),
        rate_per_s=round(result.answered / seconds, 1),
        p50_ms=result.p(50),
        p99_ms=result.p(99),
        cpu_ms_per_alarm=result.cpu_ms_per_alarm(),
        loadavg=result.loadavg,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alarms", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--out", default="bench/results/proto_dc09_pysiaalarm.json")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.units))
        return
    load = Load(args.alarms, args.rate, args.units)
    report(asyncio.run(run(load)), load, args.out)


if __name__ == "__main__":
    main()
