"""Issue 13, last point: a call is a session held by one gateway; when that gateway dies the call ends plainly on
both sides, and the operator can start again through another instance.

Two ``trygg gateway`` processes on one PostgreSQL database and one Mosquitto (shared group ``trygg``), the receiver
in this process, a simulated base unit with its pendant (``firmware_sim/base_unit.py``) and an operator's aiortc
peer (tests/test_voice.py's ``Operator``, playing 400 Hz as a browser's fake microphone does). The unit calls on
its pendant's alarm; the operator answers through gateway A's API; gateway A is SIGKILLed mid-call. Then the
operator's peer connection leaves ``connected`` (aiortc has no ``disconnected`` state: it goes ``failed``, which is
what the console's ``call.js`` ends the call on), the unit's call ends (it does not stay in call), and a callback
through gateway B puts a new call through on which both sides hear each other.

Failure detection is ICE consent freshness (RFC 7675) in aioice: a check every ``CONSENT_INTERVAL`` (5 s), the
session dead after ``CONSENT_FAILURES`` (6) unanswered ones, so about 30 s with the defaults (a browser's is of the
same order). This test shortens the interval for the peers in this process (the operator's and the unit's) to
``CONSENT_S`` so it stays well under a minute; the mechanism is the same, only the clock is faster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aioice.ice
import httpx
import pytest
import pytest_asyncio

from devices import DeviceType
from firmware_sim.base_unit import SimBaseUnit
from firmware_sim.device import SimDevice
from gateway.registry import add_device
from testing.broker import Broker, free_port
from testing.harness import GatewayProcess, create_user, make_settings, prepare_stores, running_receiver
from testing.wait import eventually
from tests.test_voice import OPERATOR_HZ, PASSWORD, UNIT_HZ, Operator
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings
from trygg.webrtc import use_host_addresses

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
    await create_user(s, "op", "operator", PASSWORD)
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


async def token(s: Settings) -> str:
    async with httpx.AsyncClient(base_url=s.receiver_url, timeout=10) as http:
        r = await http.post("/api/v1/auth/token", json={"username": "op", "password": PASSWORD})
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
