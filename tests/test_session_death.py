"""Issue 13, last point: a call or a camera look is a session held by one gateway; when that gateway dies the
session ends plainly on both sides, and the operator can start again through another instance.

Two ``trygg gateway`` processes on one PostgreSQL database and one Mosquitto (shared group ``trygg``), the receiver
in this process, and an operator's aiortc peer. Voice: a simulated base unit with its pendant
(``firmware_sim/base_unit.py``) calls on its pendant's alarm, the operator (tests/test_voice.py's ``Operator``,
playing 400 Hz) answers through gateway A's API. Camera: a simulated camera (``firmware_sim/camera.py``), a consent
that allows a look on an alarm, and the operator starts a look on a pendant's alarm through gateway A. Gateway A is
SIGKILLed mid-session. Then the operator's peer connection leaves ``connected`` (aiortc has no ``disconnected``
state and reports ``closed`` once consent expires; a browser says ``disconnected`` and then ``failed``, on which
the console's ``call.js`` and ``checkin.js`` end the session), the unit's call or the camera's look ends (neither
stays in it until its cap), and a callback or a new look through gateway B goes through with media flowing.

Failure detection is ICE consent freshness (RFC 7675) in aioice: a check every ``CONSENT_INTERVAL`` (5 s), the
session dead after ``CONSENT_FAILURES`` (6) unanswered ones, so about 33 s with the defaults (a browser's is of the
same order). These tests shorten the interval for the peers in this process (the operator's, the unit's, the
camera's) to ``CONSENT_S`` so each stays under a minute; the mechanism is the same, only the clock is faster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aioice.ice
import httpx
import pytest
import pytest_asyncio
from aiortc import RTCSessionDescription

from devices import DeviceType
from firmware_sim.base_unit import SimBaseUnit
from firmware_sim.camera import SimCamera
from firmware_sim.device import SimDevice
from gateway.registry import add_device
from testing.broker import Broker, free_port
from testing.harness import GatewayProcess, create_user, make_settings, prepare_stores, running_receiver
from testing.wait import eventually
from tests.test_voice import OPERATOR_HZ, PASSWORD, UNIT_HZ, Operator
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings
from trygg.webrtc import new_peer_connection, use_host_addresses

CONSENT_S = 1.0  # aioice's consent check interval for the peers in this process (module docstring)
DEAD_WITHIN_S = 20.0  # 6 failed checks of ~1 s each, plus each check's own timeout, on a loaded machine
HA: dict[str, Any] = {
    "mqtt_shared_group": "trygg",
    "leader_check_s": 0.2,
    "leader_ttl_s": 2.0,
    "webrtc_host_addresses": ["127.0.0.1"],
    "voice_answer_timeout_s": 10,
}


@pytest_asyncio.fixture
async def gateways(broker: Broker, tmp_path: Path, pg_fresh_url: str) -> AsyncIterator[tuple[Settings, list[Any]]]:
    """The receiver (in this process) and two gateway processes; yields the base settings and [A, B]."""
    s = make_settings(tmp_path, broker.url, gateway_database_url=pg_fresh_url, **HA)
    await prepare_stores(s)
    async with engine_scope(s.gateway_database_url) as engine:
        async with session_factory(engine).begin() as session:
            await add_device(session, "unit1", DeviceType.BASE_UNIT, client_ref="astrid")
            await add_device(session, "pend1", DeviceType.PENDANT, client_ref="astrid")
            await add_device(session, "cam1", DeviceType.CAMERA, client_ref="astrid")
    await create_user(s, "op", "operator", PASSWORD)
    await create_user(s, "case", "case_officer", PASSWORD)
    procs = [
        GatewayProcess(
            s.model_copy(update={"instance_name": name, "gateway_http_port": free_port()}), tmp_path / f"{name}.log"
        )
        for name in ("gwA", "gwB")
    ]
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running_receiver(s))
        try:
            for proc in procs:
                proc.spawn()
            for proc in procs:
                await asyncio.to_thread(proc.wait_ready, 60)  # the receiver serves meanwhile
            yield s, procs
        finally:
            for proc in procs:
                proc.stop()
            use_host_addresses([])


async def token(s: Settings, user: str = "op") -> str:
    async with httpx.AsyncClient(base_url=s.receiver_url, timeout=10) as http:
        r = await http.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        r.raise_for_status()
        return str(r.json()["access_token"])


def gateway_api(gw: GatewayProcess, bearer: str) -> httpx.AsyncClient:
    """One gateway instance's own API (not the receiver's ``/gw`` proxy, which reaches just one)."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gw.port}/api/v1", timeout=30, headers={"Authorization": f"Bearer {bearer}"}
    )


@pytest.mark.timeout(120)
async def test_a_call_ends_plainly_when_its_gateway_dies_and_the_operator_calls_back_through_another(
    gateways: tuple[Settings, list[GatewayProcess]], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, (gw_a, gw_b) = gateways
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", CONSENT_S)
    bearer = await token(s)
    pendant = SimDevice("pend1", DeviceType.PENDANT, s, heartbeat_interval_s=60)
    unit = SimBaseUnit("unit1", s, pendants=[pendant], tone_hz=UNIT_HZ)
    await unit.start()
    first = Operator(s)
    again: Operator | None = None
    try:
        async with gateway_api(gw_a, bearer) as api_a, gateway_api(gw_b, bearer) as api_b:

            async def units_known() -> bool:  # both instances have the unit's retained voice/state
                for api in (api_a, api_b):
                    r = await api.get("/voice/calls")
                    if r.status_code != 200:
                        return False
                return True

            await eventually(units_known, timeout=30, interval=0.2)
            alarm_id = await unit.press(pendant=0)

            async def ringing() -> dict[str, Any] | None:  # every instance hears a unit's call (not shared)
                calls = (await api_a.get("/voice/calls")).json()
                return next((c for c in calls if c["alarm_id"] == alarm_id and c["phase"] == "ringing"), None)

            call = await eventually(ringing, timeout=30, interval=0.1)
            r = await api_a.post(f"/voice/calls/{call['call_id']}/answer", json=await first.offer())
            assert r.status_code == 200, r.text
            await first.accept(r.json())
            unit_call = unit.current
            assert unit_call is not None and unit_call.call_id == call["call_id"]
            assert await eventually(
                lambda: unit_call.heard.ratio(OPERATOR_HZ) > 20 and first.heard.ratio(UNIT_HZ) > 20,
                timeout=20,
                interval=0.2,
            )
            assert first.pc.connectionState == "connected"

            gw_a.kill()  # SIGKILL: no voice/end, no closing of the peers, the relay just stops
            t_kill = time.monotonic()
            await eventually(lambda: first.pc.connectionState != "connected", timeout=DEAD_WITHIN_S, interval=0.1)
            operator_told_s = time.monotonic() - t_kill
            assert first.pc.connectionState in ("failed", "closed"), first.pc.connectionState
            await eventually(lambda: unit_call.ended.is_set(), timeout=DEAD_WITHIN_S, interval=0.1)
            unit_ended_s = time.monotonic() - t_kill
            assert unit_call.ended_reason == "failed" and unit.current is None  # not "in call" forever
            print(f"gateway killed: operator told in {operator_told_s:.1f} s, unit ended in {unit_ended_s:.1f} s")

            # Gateway B had the call ringing too (it heard the unit's voice/call); the unit's voice/end ends it.
            async def b_clear() -> bool:
                calls = (await api_b.get("/voice/calls")).json()
                return all(c["call_id"] != call["call_id"] for c in calls)

            assert await eventually(b_clear, timeout=10, interval=0.2)

            # The operator starts again through gateway B: a callback to the unit, on the same open alarm.
            again = Operator(s)
            body = {**(await again.offer()), "device_id": "pend1", "alarm_id": alarm_id, "unit_id": "unit1"}
            r = await api_b.post("/voice/callback", json=body)
            assert r.status_code == 200, r.text
            await again.accept(r.json())
            back = unit.current
            assert back is not None and back.callback and back.call_id != call["call_id"]
            assert await eventually(
                lambda: back.heard.ratio(OPERATOR_HZ) > 20 and again.heard.ratio(UNIT_HZ) > 20,
                timeout=20,
                interval=0.2,
            )
            r = await api_b.post(f"/voice/calls/{back.call_id}/end")
            assert r.status_code == 204, r.text
            await eventually(lambda: back.ended.is_set(), timeout=10, interval=0.1)
    finally:
        await first.close()
        if again is not None:
            await again.close()
        await unit.stop()


class Viewer:
    """The operator's side of a camera look as the console's: one video m-line, receive only."""

    def __init__(self, s: Settings) -> None:
        self.pc = new_peer_connection(s)
        self.pc.addTransceiver("video", direction="recvonly")
        self.tracks: dict[str, Any] = {}
        self.pc.on("track", lambda track: self.tracks.setdefault(track.kind, track))

    async def look(self, api: httpx.AsyncClient, consent_id: int, alarm_id: str) -> dict[str, Any]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer", "device_id": "pend1", "alarm_id": alarm_id}
        r = await api.post(f"/consents/{consent_id}/alarm-look", json=body)
        assert r.status_code == 200, r.text
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.json()["sdp"], type="answer"))
        return dict(r.json())

    async def frame(self) -> Any:
        return (await asyncio.wait_for(self.tracks["video"].recv(), 10)).to_ndarray(format="bgr24")


def window_around_now() -> dict[str, Any]:
    """A night window from an hour ago to two hours ahead (Stockholm), so a look is allowed whenever this runs."""
    local = datetime.now(ZoneInfo("Europe/Stockholm"))
    hhmm = [(local + timedelta(hours=h)).strftime("%H:%M") for h in (-1, 1, 2)]
    return {"window_start": hhmm[0], "times": [hhmm[1]], "window_end": hhmm[2]}


@pytest.mark.timeout(120)
async def test_a_camera_look_ends_plainly_when_its_gateway_dies_and_a_new_look_goes_through_another(
    gateways: tuple[Settings, list[GatewayProcess]], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, (gw_a, gw_b) = gateways
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", CONSENT_S)
    op, case = await token(s), await token(s, "case")
    camera = SimCamera("cam1", s, scenario="in_bed", size=(320, 240))
    pendant = SimDevice("pend1", DeviceType.PENDANT, s, heartbeat_interval_s=60)
    await camera.start()
    await pendant.start()
    first = Viewer(s)
    again: Viewer | None = None
    try:
        async with gateway_api(gw_a, op) as api_a, gateway_api(gw_b, op) as api_b, gateway_api(gw_a, case) as admin:
            consent = {
                "client_ref": "astrid",
                "camera_id": "cam1",
                "consented_by": [{"name": "Astrid", "role": "client"}],
                "basis": "decision 2026-0131",
                "look_on_alarm": True,
                "max_look_s": 60,
                **window_around_now(),
            }
            r = await admin.post("/consents", json=consent)
            assert r.status_code == 201, r.text
            consent_id = r.json()["id"]
            alarm_id = await pendant.press("fall")
            await pendant.wait_for_status(alarm_id, "stored", 15)

            await first.look(api_a, consent_id, alarm_id)
            assert (await first.frame()).shape == (240, 320, 3)
            assert camera.live and first.pc.connectionState == "connected"
            camera.look_ended.clear()

            gw_a.kill()  # SIGKILL mid-look
            t_kill = time.monotonic()
            await eventually(lambda: first.pc.connectionState != "connected", timeout=DEAD_WITHIN_S, interval=0.1)
            viewer_told_s = time.monotonic() - t_kill
            assert first.pc.connectionState in ("failed", "closed"), first.pc.connectionState
            await asyncio.wait_for(camera.look_ended.wait(), DEAD_WITHIN_S)
            camera_idle_s = time.monotonic() - t_kill
            assert not camera.live and camera.history[-1].reason == "failed"
            print(f"gateway killed: viewer told in {viewer_told_s:.1f} s, camera idle in {camera_idle_s:.1f} s")

            # A new look on the same alarm through gateway B: video flows again.
            again = Viewer(s)
            look = await again.look(api_b, consent_id, alarm_id)
            assert (await again.frame()).shape == (240, 320, 3)
            assert camera.live
            r = await api_b.post(f"/looks/{look['look_id']}/end")
            assert r.status_code == 204, r.text
            await eventually(lambda: not camera.live, timeout=10, interval=0.1)
    finally:
        await first.pc.close()
        if again is not None:
            await again.pc.close()
        await pendant.stop()
        await camera.stop()
