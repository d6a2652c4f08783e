"""SCAIP runner: units send ``<mrq>`` alarms (SIP MESSAGE over UDP) to ``trygg gateway``'s SCAIP receiver and
wait for the ``<mrs>`` snu 0, resending on HOLD/BUSY or silence as a unit does; latency is send -> snu 0."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench._proto_common import Figures, Load, figures, gateway, paced
from gateway.protocols.scaip.registry import add_unit
from testing.broker import free_port
from testing.scaip import Unit, mrq

NAME = "scaip (SIP MESSAGE/UDP, <mrs> after commit)"


async def run(load: Load) -> Figures:
    devices = [f"scaip-{i:04d}" for i in range(load.units)]
    cids = [f"46{i:08d}" for i in range(load.units)]

    async def register(session: Any) -> None:
        for cid, device_id in zip(cids, devices, strict=True):
            await add_unit(session, cid, device_id)

    port = free_port()
    async with gateway(devices, register=register, scaip_port=port, scaip_transports=["udp"]) as running:
        units = [await Unit(("127.0.0.1", port), cid).open() for cid in cids]
        run_id = os.urandom(2).hex()
        latencies: list[float] = []

        async def one(i: int) -> None:
            unit = units[i % len(units)]
            ref = f"b{run_id}{i:06d}"
            t0 = time.perf_counter()
            answer = await unit.send_until_ok(mrq(ref, unit.cid), ref, deadline_s=60, retry_s=1.0)
            if answer.snu == 0:
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        tasks = [asyncio.create_task(one(i)) async for i in paced(load.alarms, load.rate)]
        await asyncio.gather(*tasks, return_exceptions=True)
        seconds = time.perf_counter() - start
        for unit in units:
            await unit.close()
        return figures(NAME, load.alarms, latencies, await running.stored(), seconds)
