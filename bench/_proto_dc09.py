"""Trygg's DC-09 receiver under the dialler load (bench/_dc09_load.py): alarms per second and send -> ACK.

``trygg gateway`` and ``trygg receiver`` run as their own processes (SQLite stores, log level WARNING, a private
Mosquitto), with ``units`` plain accounts registered; the gateway forwards to the receiver as in service. Each ACK
comes after the alarm's commit; afterwards the alarms in the gateway's store are counted, and any (unit, sequence
number) stored twice is a duplicate.

    .venv/bin/python -m bench._proto_dc09 [--alarms 500] [--rate 50] [--units 10] [--out bench/results/proto_dc09.json]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy import select

from bench._dc09_load import account_of, drive, report
from bench._proto_common import Figures, Load
from devices import DeviceType
from gateway.models import StoredAlarm
from gateway.protocols.dc09.accounts import add_account
from testing.broker import Broker, free_port, wait_port
from testing.harness import GatewayProcess, make_settings, prepare_stores, settings_env
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings

NAME = "dc09 trygg (ACK after commit)"
ALONE = "dc09 trygg, gateway alone (no receiver)"


def _start_receiver(s: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "trygg_cli", "receiver"], env=settings_env(s), stdout=log, stderr=log
        )


async def run(load: Load, *, with_receiver: bool = True) -> Figures:
    """``with_receiver=False``: the gateway without ``trygg receiver`` (an extra row, to see what the receiver's
    process costs the gateway on the same cores): its forwarder's POSTs are refused and it backs off (0.2 s,
    doubling), the alarms stay in its outbox; the ACK path (frame, commit, answer) is the same."""
    with tempfile.TemporaryDirectory(prefix="bench-dc09-") as tmp:
        tmp_path = Path(tmp)
        broker = Broker(workdir=tmp_path / "mosquitto")
        broker.start()
        s = make_settings(tmp_path, broker.url, dc09_port=free_port(), dc09_transports=["tcp"], log_level="WARNING")
        devices = {f"bench-unit-{i}": account_of(i) for i in range(load.units)}
        await prepare_stores(s, dict.fromkeys(devices, DeviceType.BASE_UNIT))
        async with engine_scope(s.gateway_database_url) as engine, session_factory(engine).begin() as session:
            for device_id, account in devices.items():
                await add_account(session, account, device_id)
        receiver = _start_receiver(s, tmp_path / "rx.log") if with_receiver else None
        gw = GatewayProcess(s, tmp_path / "gw.log")
        try:
            if receiver is not None:
                wait_port(s.receiver_http_port, timeout=60)
            gw.start()
            assert s.dc09_port is not None
            wait_port(s.dc09_port, timeout=60)  # the HTTP port may be up first, or be another process's
            assert gw.proc is not None
            pids = {"gateway": gw.proc.pid} | ({"receiver": receiver.pid} if receiver is not None else {})
            result = await drive(load, s.dc09_port, pids=pids)
        finally:
            gw.stop()
            if receiver is not None:
                receiver.terminate()
                receiver.wait(30)
            broker.stop()
        async with engine_scope(s.gateway_database_url) as engine, session_factory(engine)() as session:
            rows = (await session.execute(select(StoredAlarm.device_id, StoredAlarm.payload))).all()
        keys = [(device_id, payload["device_extra"]["dc09"]["seq"]) for device_id, payload in rows]
    seconds = max(result.last - result.first, 1e-9)
    return Figures(
        name=NAME if with_receiver else ALONE,
        sent=result.sent,
        answered=result.answered,
        stored=len(set(keys)),
        duplicates=len(keys) - len(set(keys)),
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
    parser.add_argument("--out", default="bench/results/proto_dc09.json")
    parser.add_argument("--gateway-alone", action="store_true", help="without trygg receiver (see run())")
    args = parser.parse_args()
    load = Load(args.alarms, args.rate, args.units)
    report(asyncio.run(run(load, with_receiver=not args.gateway_alone)), load, args.out)


if __name__ == "__main__":
    main()
