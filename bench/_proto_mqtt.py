"""MQTT runner (the floor the other protocols are measured beside): devices publish alarms (QoS 1) to
``trygg gateway`` through Mosquitto and wait for the ``stored`` ack; latency is publish -> ack."""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import suppress
from datetime import UTC, datetime

from bench._proto_common import Figures, Load, figures, gateway, paced
from bench.alarm_latency import Timings, connect_devices, wait_all

NAME = "mqtt (QoS 1, stored ack after commit)"


async def run(load: Load) -> Figures:
    devices = [f"mqtt-{i:04d}" for i in range(load.units)]
    async with gateway(devices) as running:
        s = running.settings
        acks = Timings(expected=load.alarms)
        clients = await connect_devices(devices, s, acks)
        run_id = os.urandom(2).hex()
        start = time.perf_counter()
        async for i in paced(load.alarms, load.rate):
            device_id = devices[i % len(devices)]
            alarm_id = f"b{run_id}-{i:06d}"
            body = {"alarm_id": alarm_id, "type": "assistance", "ts": datetime.now(UTC).isoformat()}
            acks.sent[(device_id, alarm_id)] = time.perf_counter()
            clients[device_id].publish(f"{s.topic_root}/devices/{device_id}/alarm", json.dumps(body).encode(), qos=1)
        await wait_all([acks], 60)
        seconds = (max(acks.arrived.values()) if acks.arrived else time.perf_counter()) - start
        for client in clients.values():
            with suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)
        return figures(NAME, load.alarms, acks.latencies(), await running.stored(), seconds)
