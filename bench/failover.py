"""Failover figures (issue 13): the chaos scenario of ``testing/chaos.py`` with numbers per fault.

    .venv/bin/python -m bench.failover [--devices 1000] [--press-s 60] [--out bench/results/failover.json]

Two Mosquittos, three ``trygg gateway`` and two ``trygg receiver`` processes (behind HAProxy), two fresh PostgreSQL
databases (admin DSN from ``TRYGG_TEST_PG_DSN``, default ``postgresql://postgres@127.0.0.1:5432/postgres``, dropped
afterwards); the simulated devices press at a steady rate while a follower gateway, the leader gateway, the leader
receiver and the first broker are SIGKILLed in turn (each restarted after 4 s). Per fault it reports: the time from
the kill to the first alarm stored after it, the longest gap in stored alarms (the devices' ``stored``) and in an
operator's live feed (through HAProxy) from the kill to the next fault, the alarms pressed in that window that
needed a device resend, the slowest press-to-stored among them, and the leader takeover (lock taken, and acting
``3 x leader_check_s`` later). Target: no gap longer than the devices' resend interval plus 5 s. The floor beside
it: the same gaps with no fault, over the first ``first_fault_s`` of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from bench._common import machine, write_json
from testing.chaos import ChaosConfig, ChaosResult, gap, run_chaos
from tests.pg import admin_dsn, create_database, drop_database, unique_db_name, with_database


async def run(cfg: ChaosConfig, workdir: Path) -> ChaosResult:
    dsn = admin_dsn()
    names = [unique_db_name("trygg_bench_failover"), unique_db_name("trygg_bench_failover")]
    for name in names:
        await create_database(dsn, name)
    try:
        urls = [with_database(dsn, name, driver="asyncpg") for name in names]
        return await run_chaos(workdir, urls[0], urls[1], cfg)
    finally:
        for name in names:
            await drop_database(dsn, name)


def figures(result: ChaosResult) -> dict[str, Any]:
    cfg = result.config
    target = cfg.resend_s + 5.0
    rows = result.per_fault()
    quiet_end = result.started_at + cfg.first_fault_s
    floor = {
        "longest_stored_gap_s": gap(result.pool.stored, result.started_at + 1.0, quiet_end),
        "longest_feed_gap_s": gap(result.feed.arrivals, result.started_at + 1.0, quiet_end),
    }
    checks = result.checks
    pressed = set(result.pool.alarms)
    return {
        "devices": cfg.devices,
        "press_rate_per_s": round(cfg.devices / cfg.press_s, 1),
        "resend_s": cfg.resend_s,
        "fallback_after_s": cfg.fallback_after_s,
        "down_s": cfg.down_s,
        "target_gap_s": target,
        "faults": rows,
        "no_fault_floor": floor,
        "target_met": all(max(r["longest_stored_gap_s"], r["longest_feed_gap_s"]) <= target for r in rows),
        "every_alarm_queued_once": {k for k in checks["queued"] if k[1].startswith("chaos-a")} == pressed
        and not checks["queued_twice"],
        "escalated_twice": checks["escalated_twice"],
        "false_offline_alarms": checks["offline_alarms"],
        "load_average_1m": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--press-s", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/failover.json"))
    args = parser.parse_args()
    cfg = ChaosConfig(devices=args.devices, press_s=args.press_s)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trygg-bench-failover-") as tmp:
        result = asyncio.run(run(cfg, Path(tmp)))
    out = figures(result)
    out["load_average_1m_before"] = load_before
    out["machine"] = machine()
    print(f"failover, {out['devices']} devices at {out['press_rate_per_s']}/s, resend {cfg.resend_s} s, target gap")
    print(f"<= {out['target_gap_s']} s (load average {load_before:.1f} before, {out['load_average_1m']:.1f} after)")
    print(
        f"{'fault':>15} {'target':>8} {'stored again':>12} {'gap stored':>10} {'gap feed':>9} {'resent':>9} "
        f"{'slowest':>8} {'leader':>7}"
    )
    floor = out["no_fault_floor"]
    print(f"{'(no fault)':>15} {'':>8} {'':>12} {floor['longest_stored_gap_s']:>10} {floor['longest_feed_gap_s']:>9}")
    for r in out["faults"]:
        print(
            f"{r['fault']:>15} {r['target']:>8} {r['stored_again_after_s']!s:>12} {r['longest_stored_gap_s']:>10} "
            f"{r['longest_feed_gap_s']:>9} {r['alarms_resent']:>4}/{r['alarms_pressed']:<4} "
            f"{r['slowest_press_to_stored_s']:>8} {r['leader_takeover_s']!s:>7}"
        )
    print(
        f"target {'met' if out['target_met'] else 'NOT met'}; every alarm queued once: "
        f"{out['every_alarm_queued_once']}; escalated twice: {out['escalated_twice']}; "
        f"false offline alarms: {out['false_offline_alarms']}"
    )
    write_json(args.out, out)


if __name__ == "__main__":
    main()
