"""The gateway side of ``bench.checkin``: a Gateway with the CameraRelayFeature only, in its own process.

    python -m bench._checkin_gateway --mqtt-url mqtt://127.0.0.1:PORT --workdir DIR --port CONTROL_PORT

No receiver runs: the gateway's forwarder only needs one for alarms (it retries in the background; no alarm is
raised here). The operator side (in the benchmark's process) reaches ``start_look`` / ``end_look`` through a tiny
control endpoint on 127.0.0.1:CONTROL_PORT: one JSON object per line in, one per line out, one request per
connection:

- ``{"op": "look", "look_id", "camera_id", "sdp", "type", "privacy", "max_s"}`` -> ``{"sdp", "type"}``
  (the answer of ``start_look``) or ``{"error"}``;
- ``{"op": "end", "look_id"}`` -> ``{"ok": true}`` once the look has ended (reason ``operator``);
- ``{"op": "wait_state", "camera_ids": [...], "state": "idle", "timeout_s": 30}`` -> ``{"ok": true}`` or
  ``{"error"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from gateway.checkin.media import CameraRelayFeature, LookError
from gateway.checkin.privacy import PrivacyMode
from gateway.service import Gateway
from testing.harness import make_settings
from trygg.logging import configure_logging


async def handle(relay: CameraRelayFeature, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "look":
        try:
            return await relay.start_look(
                look_id=request["look_id"],
                camera_id=request["camera_id"],
                offer_sdp=request["sdp"],
                offer_type=request["type"],
                privacy=PrivacyMode(request.get("privacy", "full")),
                max_s=float(request["max_s"]),
            )
        except LookError as exc:
            return {"error": exc.reason}
    if op == "end":
        await relay.end_look(request["look_id"], "operator")
        return {"ok": True}
    if op == "wait_state":
        state, timeout_s = request.get("state", "idle"), float(request.get("timeout_s", 30))
        try:
            await asyncio.gather(*(relay.wait_camera_state(c, state, timeout_s) for c in request["camera_ids"]))
        except TimeoutError:
            late = [c for c in request["camera_ids"] if relay.camera_state(c) != state]
            return {"error": f"not {state} after {timeout_s:g} s: {late}"}
        return {"ok": True}
    return {"error": f"unknown op {op!r}"}


async def run(args: argparse.Namespace) -> None:
    settings = make_settings(Path(args.workdir), args.mqtt_url, webrtc_host_addresses=["127.0.0.1"])
    gateway = Gateway(settings, features=lambda port: [CameraRelayFeature(port)])
    relay = gateway.feature(CameraRelayFeature)
    await gateway.start()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                reply = await handle(relay, json.loads(line))
            except Exception as exc:  # a bench helper: report, do not die
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("gateway ready", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    configure_logging(args.log_level)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
