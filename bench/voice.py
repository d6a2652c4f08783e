"""Voice calls: mouth-to-ear delay both ways through the gateway's relay, and how many simultaneous calls this
machine carries with the delay's p95 under 250 ms.

    .venv/bin/python -m bench.voice [--max-calls 8] [--seconds 16] [--out bench/results/voice.json]

A private Mosquitto, the gateway (only its voice relay) and the operators in this process, the base units in
their own (``bench._voice_units``), all on 127.0.0.1. Each call: the operator's aiortc peer (as the browser:
one audio m-line, both ways, Opus) calls a unit back through ``VoiceRelayFeature.connect`` (the path of the
console's callback, minus the receiver's right), so media goes operator <-> gateway <-> unit.

The marker: each side sends a 60 ms burst every 2 s (operator 2 kHz, unit 3 kHz; silence between) and
remembers when each burst's first frame left its track (``time.monotonic()``: "mouth"); each side's listener
notes when a burst's energy first rises over the threshold in the frames it decodes ("ear"). Mouth to ear = ear
minus mouth: encode, gateway decode + re-encode, jitter buffers, decode, on loopback. No sound card, no
acoustic path: those add their own tens of milliseconds on a real unit and a real headset.

Capacity: k = 1, 2, 4, ... ``--max-calls`` simultaneous calls, ``--seconds`` each after a 2 s warm-up; the
answer is the largest k whose p95 (both directions together) stays under ``--limit-ms`` (250 ms; ITU-T G.114:
under 150 ms one way is good, 400 ms the limit). The floor, in the same run: two aiortc peers of this process
talking directly (one hop: what the relay's second hop adds is the difference).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiortc import RTCSessionDescription

from bench._common import latency_summary, machine, table, write_json
from bench._voice_units import MARKER_EVERY_S, OPERATOR_MARKER_HZ, UNIT_MARKER_HZ
from firmware_sim.audio import Listener, ToneTrack
from gateway.service import Gateway
from gateway.voice.relay import VoiceRelayFeature
from testing.broker import Broker
from testing.harness import make_settings, prepare_stores
from trygg.logging import configure_logging
from trygg.webrtc import new_peer_connection, use_host_addresses


def pair(sent: list[float], heard: list[float], window_s: float = 1.5) -> list[float]:
    """Each burst sent, matched to the first onset heard within ``window_s`` after it."""
    delays, j = [], 0
    for t in sent:
        while j < len(heard) and heard[j] < t:
            j += 1
        if j < len(heard) and heard[j] - t < window_s:
            delays.append(heard[j] - t)
            j += 1
    return delays


class Operator:
    def __init__(self, settings: Any) -> None:
        self.pc = new_peer_connection(settings)
        self.tone = ToneTrack(None, marker_hz=OPERATOR_MARKER_HZ, marker_every_s=MARKER_EVERY_S)
        self.heard = Listener(marker_hz=UNIT_MARKER_HZ)
        self.pc.addTrack(self.tone)
        self.tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")  # type: ignore[untyped-decorator]
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.ensure_future(self.heard.consume(track)))

    async def call(self, relay: VoiceRelayFeature, unit_id: str) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await relay.connect(
            operator="bench",
            offer_sdp=self.pc.localDescription.sdp,
            offer_type="offer",
            unit_id=unit_id,
            alarm_device_id=unit_id,
            alarm_id="bench",
            answer_timeout_s=30,
        )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return answer["call_id"]


async def direct_floor(settings: Any, seconds: float) -> dict[str, Any]:
    """The floor, in the same run: two peers of this process talking directly (one hop, no relay, no MQTT)."""
    a, b = new_peer_connection(settings), new_peer_connection(settings)
    tone_a = ToneTrack(None, marker_hz=OPERATOR_MARKER_HZ, marker_every_s=MARKER_EVERY_S)
    tone_b = ToneTrack(None, marker_hz=UNIT_MARKER_HZ, marker_every_s=MARKER_EVERY_S)
    heard_a, heard_b = Listener(marker_hz=UNIT_MARKER_HZ), Listener(marker_hz=OPERATOR_MARKER_HZ)
    tasks: list[asyncio.Future[None]] = []
    for pc, tone, heard in ((a, tone_a, heard_a), (b, tone_b, heard_b)):
        pc.addTrack(tone)
        pc.on("track", lambda track, heard=heard: tasks.append(asyncio.ensure_future(heard.consume(track))))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.sleep(2.0)
    lo = time.monotonic()
    await asyncio.sleep(seconds)
    hi = time.monotonic()
    await a.close()
    await b.close()
    ab = pair([t for t in tone_a.marker_times if lo <= t <= hi], heard_b.marker_times)
    ba = pair([t for t in tone_b.marker_times if lo <= t <= hi], heard_a.marker_times)
    return {"one_way": latency_summary(ab + ba)}


async def run_k(relay: VoiceRelayFeature, settings: Any, unit_ids: list[str], seconds: float) -> dict[str, Any]:
    ops = [Operator(settings) for _ in unit_ids]
    t_start = time.monotonic()
    call_ids = await asyncio.gather(*(op.call(relay, u) for op, u in zip(ops, unit_ids, strict=True)))
    setup_s = time.monotonic() - t_start
    await asyncio.sleep(2.0)  # warm-up: ICE, DTLS, jitter buffers
    window = (time.monotonic(), time.monotonic() + seconds)
    cpu0 = os.times()
    await asyncio.sleep(seconds)
    cpu1 = os.times()
    for call_id in call_ids:
        await relay.hang_up(call_id, "bench")
    for op in ops:
        await op.pc.close()
    return {
        "ops": ops,
        "window": window,
        "setup_s": setup_s,
        "cpu_main": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / seconds,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-calls", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--limit-ms", type=float, default=250.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/voice.json"))
    args = parser.parse_args()
    ks = [k for k in (1, 2, 4, 6, 8, 12, 16, 24, 32) if k <= args.max_calls]
    tmp = Path(tempfile.mkdtemp(prefix="trygg-bench-voice-"))
    broker = Broker(workdir=tmp / "mosquitto")
    broker.start()
    configure_logging("WARNING")
    settings = make_settings(tmp, broker.url, webrtc_host_addresses=["127.0.0.1"], log_level="WARNING")
    await prepare_stores(settings)
    gw = Gateway(settings, features=lambda port: [VoiceRelayFeature(port)])
    await gw.start()
    relay = gw.feature(VoiceRelayFeature)
    units = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._voice_units",
        "--mqtt-url",
        broker.url,
        "--workdir",
        str(tmp / "units"),
        "--count",
        str(max(ks)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert units.stdout is not None and units.stdin is not None
    assert (await units.stdout.readline()).decode().strip() == "ready"
    load_before = os.getloadavg()
    runs = []
    floor = await direct_floor(settings, args.seconds)
    try:
        for k in ks:
            ids = [f"unit-{i}" for i in range(k)]
            runs.append((k, ids, await run_k(relay, settings, ids, args.seconds)))
            await asyncio.sleep(1.0)
    finally:
        units.stdin.close()
        unit_out = json.loads((await asyncio.wait_for(units.stdout.readline(), 60)).decode() or "{}")
        await asyncio.wait_for(units.wait(), 30)
        await gw.stop()
        use_host_addresses([])
        broker.stop()
    results = []
    used: dict[str, int] = {}
    for k, ids, run in runs:
        lo, hi = run["window"]
        to_unit: list[float] = []
        to_op: list[float] = []
        for op, unit_id in zip(run["ops"], ids, strict=True):
            n = used.get(unit_id, 0)
            used[unit_id] = n + 1
            rec = unit_out.get(unit_id, [])[n] if n < len(unit_out.get(unit_id, [])) else {"sent": [], "heard": []}
            sent_op = [t for t in op.tone.marker_times if lo <= t <= hi]
            to_unit += pair(sent_op, rec["heard"])
            sent_unit = [t for t in rec["sent"] if lo <= t <= hi]
            to_op += pair(sent_unit, op.heard.marker_times)
        both = latency_summary(to_unit + to_op)
        results.append(
            {
                "calls": k,
                "operator_to_unit": latency_summary(to_unit),
                "unit_to_operator": latency_summary(to_op),
                "both": both,
                "markers_expected": 2 * k * int(args.seconds / MARKER_EVERY_S),
                "setup_s": round(run["setup_s"], 3),
                "cpu_gateway_and_operators_pct": round(100 * run["cpu_main"], 1),
            }
        )
    ok = [r["calls"] for r in results if r["both"].get("p95_ms", 1e9) < args.limit_ms]
    data = {
        "when": datetime.now(UTC).isoformat(),
        "command": "python -m bench.voice " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "note": "machine shared with other engineers' work while measuring",
        "limit_ms": args.limit_ms,
        "max_calls_under_limit": max(ok) if ok else 0,
        "floor_direct_one_hop": floor,
        "runs": results,
    }
    rows = [
        [
            r["calls"],
            r["operator_to_unit"].get("p50_ms"),
            r["operator_to_unit"].get("p95_ms"),
            r["unit_to_operator"].get("p50_ms"),
            r["unit_to_operator"].get("p95_ms"),
            f"{r['both'].get('count', 0)}/{r['markers_expected']}",
            r["cpu_gateway_and_operators_pct"],
        ]
        for r in results
    ]
    print(table(["calls", "op->unit p50", "p95", "unit->op p50", "p95", "markers", "CPU % (gw+ops)"], rows))
    print(f"floor (two peers directly, one hop, same run): {floor['one_way']}")
    print(f"max simultaneous calls with p95 < {args.limit_ms:g} ms: {data['max_calls_under_limit']}")
    print(f"load average before/after: {load_before} / {data['loadavg_after']} (nproc {os.cpu_count()}, shared)")
    write_json(args.out, data)


if __name__ == "__main__":
    asyncio.run(main())
