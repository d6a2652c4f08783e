"""Alarms per second and send -> answer latency of every protocol Trygg receives, in one run, side by side.

    .venv/bin/python -m bench.protocols [--alarms 500] [--rate 50] [--units 20] [--out bench/results/protocols.json]

Runs each runner module that exists among ``bench/_proto_mqtt.py`` (the MQTT contract: the floor),
``bench/_proto_scaip.py``, ``bench/_proto_dc09.py``, ``bench/_proto_dc09_alone.py`` (the same gateway without the
receiver's process: an extra row) and ``bench/_proto_dc09_pysiaalarm.py``, one after the other,
each against a fresh gateway (its own process, a private Mosquitto, SQLite, loopback only) with the same load.
A runner defines ``NAME`` and ``async def run(load: Load) -> Figures`` (``bench/_proto_common.py``). Prints a
table and writes the figures with the machine's facts (cores, load average) to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench._common import machine, raise_nofile, table, write_json
from bench._proto_common import Figures, Load

RUNNERS = (
    "bench._proto_mqtt",
    "bench._proto_scaip",
    "bench._proto_dc09",
    "bench._proto_dc09_alone",
    "bench._proto_dc09_pysiaalarm",
)


def available() -> list[Any]:
    modules = []
    for name in RUNNERS:
        if (Path(__file__).parent / f"{name.rsplit('.', 1)[1]}.py").exists():
            modules.append(importlib.import_module(name))
    return modules


async def run_all(load: Load, only: list[str] | None) -> list[Figures]:
    results = []
    for module in available():
        if only and not any(word in module.__name__ for word in only):
            continue
        print(f"running {module.NAME} ...", flush=True)
        t = time.perf_counter()
        figures: Figures = await module.run(load)
        print(f"  done in {time.perf_counter() - t:.1f} s", flush=True)
        results.append(figures)
    return results


def report(results: list[Figures], load: Load) -> str:
    headers = ["protocol", "sent", "answered", "stored", "dup", "s", "answered/s", "p50 ms", "p99 ms"]
    headers += ["CPU ms/alarm", "load"]
    rows = [
        [
            *(f.name, f.sent, f.answered, f.stored, f.duplicates, f.seconds, f.rate_per_s, f.p50_ms, f.p99_ms),
            " ".join(f"{k} {v}" for k, v in f.cpu_ms_per_alarm.items()),
            f"{f.loadavg[0]}-{f.loadavg[1]}" if f.loadavg else "",
        ]
        for f in results
    ]
    return f"load: {load.alarms} alarms at {load.rate:g}/s over {load.units} units\n" + table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alarms", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--units", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="run only the runners whose module name contains one of these")
    parser.add_argument("--out", type=Path, default=Path("bench/results/protocols.json"))
    args = parser.parse_args()
    raise_nofile()
    load = Load(alarms=args.alarms, rate=args.rate, units=args.units)
    before = os.getloadavg()
    results = asyncio.run(run_all(load, args.only))
    print(report(results, load))
    write_json(
        args.out,
        {
            "command": "python -m bench.protocols " + " ".join(f"--{k} {v}" for k, v in asdict(load).items()),
            "load": asdict(load),
            "results": [asdict(f) for f in results],
            "machine": machine()
            | {"nproc": os.cpu_count(), "loadavg_before": before, "loadavg_after": os.getloadavg()},
            "note": "shared machine: other engineers' tests ran at the same time",
        },
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
