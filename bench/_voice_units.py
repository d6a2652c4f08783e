"""The base units of ``bench.voice``: SimBaseUnits in their own process, each sending a marker burst (3 kHz,
60 ms) every 2 s and listening for the operator's (2 kHz).

    python -m bench._voice_units --mqtt-url mqtt://127.0.0.1:PORT --workdir DIR --count 8

Unit ids are ``unit-<i>``. It prints ``ready`` once every unit's voice line is up; on SIGTERM (or stdin closing)
it prints one JSON line ``{unit_id: {"sent": [...], "heard": [...]}}`` per call, times in ``time.monotonic()``
(CLOCK_MONOTONIC: one clock for every process of this machine), and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from firmware_sim.base_unit import SimBaseUnit
from testing.harness import make_settings
from trygg.logging import configure_logging

UNIT_MARKER_HZ = 3000.0
OPERATOR_MARKER_HZ = 2000.0
MARKER_EVERY_S = 2.0  # far apart: a burst heard late is never taken for the next one


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=4)
    args = parser.parse_args()
    settings = make_settings(args.workdir, args.mqtt_url, webrtc_host_addresses=["127.0.0.1"], log_level="WARNING")
    configure_logging("WARNING")
    units = [
        SimBaseUnit(
            f"unit-{i}",
            settings,
            tone_hz=None,
            marker_hz=UNIT_MARKER_HZ,
            listen_marker_hz=OPERATOR_MARKER_HZ,
            call_on_alarm=False,
            heartbeat_interval_s=300,
        )
        for i in range(args.count)
    ]
    await asyncio.gather(*(u.start() for u in units))
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.readline() else None)
    await stop.wait()
    out: dict[str, list[dict[str, list[float]]]] = {}
    for u in units:
        out[u.device_id] = [
            {"sent": c.tone.marker_times if c.tone else [], "heard": c.heard.marker_times} for c in u.calls
        ]
    print(json.dumps(out), flush=True)
    await asyncio.gather(*(u.stop() for u in units), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
