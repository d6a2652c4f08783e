"""``trygg demo`` as a newcomer runs it: the press command it prints works as pasted into a fresh shell, its
automatic presses do not pile up (a press nobody acknowledged is cancelled on the device), and Ctrl-C stops it
quietly (no traceback on stderr)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from testing.broker import free_port
from testing.dc09 import Dialler
from testing.wait import eventually


async def test_demo_press_command_clean_up_and_quiet_stop(tmp_path: Path) -> None:
    http_gw, http_rx = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        {
            "TRYGG_CONFIG_FILE": "/nonexistent",
            "TRYGG_DATA_DIR": str(tmp_path / "data"),
            "TRYGG_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
            "TRYGG_RECEIVER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/receiver.db",
            "TRYGG_SIM_OUTBOX_DIR": str(tmp_path / "outbox"),
            "TRYGG_GATEWAY_HTTP_PORT": str(http_gw),
            "TRYGG_RECEIVER_HTTP_PORT": str(http_rx),
            "TRYGG_GATEWAY_URL": f"http://127.0.0.1:{http_gw}",
            "TRYGG_RECEIVER_URL": f"http://127.0.0.1:{http_rx}",
        }
    )
    stderr_path = tmp_path / "demo.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "trygg_cli",
            "demo",
            "--devices",
            "5",  # each device presses every 5 s, after its last press was cancelled (3 s): a new item each time
            "--press-every",
            "1",
            "--clear-after",
            "3",
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert proc.stdout is not None
            banner: list[str] = []
            async with asyncio.timeout(90):
                while not any("sim press" in line for line in banner) or not any("SIP MESSAGE" in x for x in banner):
                    line = (await proc.stdout.readline()).decode()
                    assert line, f"the demo ended early: {stderr_path.read_text()[-2000:]}"
                    banner.append(line)
            text = "".join(banner)
            assert "one press every 1 s across the fleet" in text
            assert re.search(r"scaip +SIP MESSAGE on 127\.0\.0\.1 udp [1-9][0-9]* tcp [1-9][0-9]*", text), text
            assert "sim-unit-001" in text  # the base unit whose pendant's press calls (docs/voice.md)
            command = next(line.strip() for line in banner if "sim press" in line)
            password = re.search(r"operator / (\S+)", text)
            assert password is not None
            # The DC-09 receiver on the printed port takes an alarm from the demo's unit (a third-party dialler).
            dc09 = re.search(r"SIA DC-09, TCP and UDP, 127\.0\.0\.1:(\d+)", text)
            assert dc09 is not None, text
            unit = Dialler(int(dc09.group(1)), "1234")
            assert (await unit.send(*Dialler.sia("1234", "MA", zone="1")))[1] == "ACK"

            # The printed command, pasted into a fresh shell: no venv on PATH, another directory.
            shell_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            done = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-c", command],
                env=shell_env,
                cwd=elsewhere,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            assert "via=fleet" in done.stdout and "stored" in done.stdout, done.stdout

            # The automatic presses clean up after themselves: unacknowledged ones are cancelled on the device.
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_rx}", timeout=10) as http:
                r = await http.post("/api/v1/auth/token", json={"username": "operator", "password": password.group(1)})
                http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

                async def cancelled() -> dict[str, Any] | None:
                    rows = (await http.get("/api/v1/alarms", params={"all_states": "true", "limit": 200})).json()
                    return next((a for a in rows if a["state"] == "cancelled"), None)

                gone = await eventually(cancelled, timeout=30, interval=0.2)
                detail = (await http.get(f"/api/v1/alarms/{gone['id']}")).json()
                assert detail["events"][-1]["code"] == "alarm.cancelled_by_device"
                waiting = (await http.get("/api/v1/alarms", params={"state": "new"})).json()
                assert len(waiting) <= 6  # one a second, each gone after 3 s (plus what is in flight)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)  # Ctrl-C
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise
    assert proc.returncode == 0, proc.returncode
    err = stderr_path.read_text()
    assert "Traceback" not in err and "Exception in callback" not in err, err[-3000:]
    assert "demo stopping" in err
    assert "disconnected from broker; reconnecting" not in err, err[-3000:]  # the gateway's own disconnect


def test_servers_in_the_demo_leave_ctrl_c_to_it() -> None:
    """uvicorn's own Ctrl-C handling re-raises the signal when a server stops; with two servers in one loop the
    second took it for a second Ctrl-C and skipped its shutdown (tracebacks, an MQTT client outliving the broker).
    The demo's servers leave the signals to the demo."""
    from fastapi import FastAPI

    from trygg.serve import server

    embedded = server(FastAPI(), "127.0.0.1", 0, handle_signals=False)
    before = signal.getsignal(signal.SIGINT)
    with embedded.capture_signals():
        assert signal.getsignal(signal.SIGINT) is before
    standalone = server(FastAPI(), "127.0.0.1", 0)  # `trygg gateway` / `trygg receiver`: uvicorn handles Ctrl-C
    with standalone.capture_signals():
        assert signal.getsignal(signal.SIGINT) == standalone.handle_exit
