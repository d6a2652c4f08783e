"""Voice calls through the gateway, without a browser: a simulated base unit calls on its pendant's alarm, an
operator (an aiortc peer playing 400 Hz) answers through the API, each side hears the other's tone, hang-up
ends both, the alarm's history shows the call, nothing reaches a disk; refusals and failures are coded and logged.
The browser's side is tests/test_console_voice.py."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiortc import RTCSessionDescription

from devices import DeviceTopic, DeviceType
from devices.messages import utcnow
from devices.voice import VoiceCall
from firmware_sim.audio import Listener, ToneTrack
from firmware_sim.base_unit import SimBaseUnit
from firmware_sim.device import SimDevice
from gateway.registry import add_device
from gateway.service import Gateway
from gateway.voice.relay import VoiceRelayFeature
from testing.broker import Broker
from testing.harness import create_user, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from trygg import audit
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings
from trygg.webrtc import new_peer_connection, use_host_addresses

pytestmark = pytest.mark.asyncio(loop_scope="module")
PASSWORD = "correct-horse-1"
OPERATOR_HZ = 400.0  # what the operator's peer plays (Chromium's fake microphone beeps at 400 Hz too)
UNIT_HZ = 1000.0


@dataclass
class Rig:
    settings: Settings
    gateway: Gateway
    unit: SimBaseUnit  # astrid's, paired with her pendant
    other: SimBaseUnit  # bertil's
    tokens: dict[str, str]

    @property
    def relay(self) -> VoiceRelayFeature:
        return self.gateway.feature(VoiceRelayFeature)

    async def http(self, user: str) -> httpx.AsyncClient:
        if user not in self.tokens:
            async with httpx.AsyncClient(base_url=self.settings.receiver_url, timeout=10) as http:
                r = await http.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
                r.raise_for_status()
                self.tokens[user] = r.json()["access_token"]
        return httpx.AsyncClient(
            base_url=self.settings.receiver_url, timeout=30, headers={"Authorization": f"Bearer {self.tokens[user]}"}
        )

    async def alarm(self, alarm_id: str) -> dict[str, Any]:
        """The queue item of a press: its own, or the one it was collapsed into (the rig's devices press again
        while an earlier alarm of theirs is open: issue 8)."""
        async with await self.http("op") as http:
            rows = (await http.get("/api/v1/alarms", params={"all_states": "true"})).json()
            for row in sorted(rows, key=lambda a: a["alarm_id"] != alarm_id):  # its own item first
                detail = dict((await http.get(f"/api/v1/alarms/{row['id']}")).json())
                repeats = {e["params"].get("alarm_id") for e in detail["events"] if e["code"] == "alarm.repeated"}
                if row["alarm_id"] == alarm_id or alarm_id in repeats:
                    return detail
            raise AssertionError(f"no queue item has alarm {alarm_id}")

    async def in_queue(self, alarm_id: str) -> bool:
        """The receiver has the press (the gateway's ``stored`` comes before the forwarder delivers it)."""
        try:
            await self.alarm(alarm_id)
        except AssertionError:
            return False
        return True


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    tmp = tmp_path_factory.mktemp("voice")
    broker = Broker(workdir=tmp / "mosquitto")
    broker.start()
    settings = make_settings(tmp, broker.url, webrtc_host_addresses=["127.0.0.1"], voice_answer_timeout_s=3)
    try:
        await prepare_stores(settings)
        async with engine_scope(settings.gateway_database_url) as engine:
            async with session_factory(engine).begin() as session:
                await add_device(session, "unit1", DeviceType.BASE_UNIT, client_ref="astrid")
                await add_device(session, "pend1", DeviceType.PENDANT, client_ref="astrid")
                await add_device(session, "unit2", DeviceType.BASE_UNIT, client_ref="bertil")
        for user, role in {"op": "operator", "pat": "patrol", "tech": "technician"}.items():
            await create_user(settings, user, role, PASSWORD)
        async with running_receiver(settings), running_gateway(settings, http=True) as gw:
            pendant = SimDevice("pend1", DeviceType.PENDANT, settings, heartbeat_interval_s=60)
            unit = SimBaseUnit("unit1", settings, pendants=[pendant], tone_hz=UNIT_HZ)
            other = SimBaseUnit("unit2", settings, tone_hz=UNIT_HZ)
            await unit.start()
            await other.start()
            rig = Rig(settings, gw, unit, other, {})
            await eventually(lambda: {"unit1", "unit2"} <= set(rig.relay.voice_units()), timeout=10)
            try:
                yield rig
            finally:
                await unit.stop()
                await other.stop()
    finally:
        use_host_addresses([])
        broker.stop()


class Operator:
    """The operator's side as a browser would be: one audio m-line, both ways, playing 400 Hz."""

    def __init__(self, settings: Settings) -> None:
        self.pc = new_peer_connection(settings)
        self.heard = Listener()
        self.pc.addTrack(ToneTrack(OPERATOR_HZ))
        self._tasks: list[Any] = []

        @self.pc.on("track")  # type: ignore[untyped-decorator]
        def on_track(track: Any) -> None:
            import asyncio

            self._tasks.append(asyncio.ensure_future(self.heard.consume(track)))

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return {"sdp": self.pc.localDescription.sdp, "type": "offer"}

    async def accept(self, answer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def close(self) -> None:
        await self.pc.close()


def _listing(path: Path) -> set[str]:
    return {str(p) for p in path.rglob("*")} if path.exists() else set()


def _open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")) and os.path.isfile(target):
            found.add(target)
    return found


async def ringing_call(rig: Rig, alarm_id: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        async with await rig.http("op") as http:
            calls = (await http.get("/gw/api/v1/voice/calls")).json()
        return next((c for c in calls if c["alarm_id"] == alarm_id and c["phase"] == "ringing"), None)

    return await eventually(find, timeout=15, interval=0.1)


async def test_unit_calls_operator_answers_both_hear_and_nothing_is_recorded(rig: Rig) -> None:
    tmp = Path(rig.settings.data_dir).parent
    before = _listing(tmp), _listing(Path(tempfile.gettempdir()))
    open_before = _open_files()
    alarm_id = await rig.unit.press(pendant=0)
    call = await ringing_call(rig, alarm_id)
    assert call["unit_id"] == "unit1" and call["alarm_device_id"] == "pend1"

    op = Operator(rig.settings)
    opened: set[str] = set()
    try:
        async with await rig.http("op") as http:
            r = await http.post(f"/gw/api/v1/voice/calls/{call['call_id']}/answer", json=await op.offer())
            assert r.status_code == 200, r.text
        await op.accept(r.json())
        unit_call = rig.unit.current
        assert unit_call is not None and unit_call.call_id == call["call_id"]

        async def both_hear() -> bool:
            nonlocal opened
            opened |= _open_files() - open_before
            return unit_call.heard.ratio(OPERATOR_HZ) > 20 and op.heard.ratio(UNIT_HZ) > 20

        assert await eventually(both_hear, timeout=15, interval=0.2)
        # the unit does not hear its own tone, the operator not their own: the relay crosses the directions
        assert unit_call.heard.ratio(UNIT_HZ) < unit_call.heard.ratio(OPERATOR_HZ) / 10
        assert op.heard.ratio(OPERATOR_HZ) < op.heard.ratio(UNIT_HZ) / 10

        # the relay keeps relaying while the call lasts (counted, not recorded)
        async def relaying() -> bool:
            to_op, to_unit = rig.relay.relayed_frames(call["call_id"])
            return to_op > 5 and to_unit > 5

        assert await eventually(relaying, timeout=10, interval=0.1), rig.relay.relayed_frames(call["call_id"])

        async with await rig.http("op") as http:
            r = await http.post(f"/gw/api/v1/voice/calls/{call['call_id']}/end")
            assert r.status_code == 204, r.text
        await unit_call.ended.wait()
        assert unit_call.ended_by is not None and unit_call.ended_by.value == "gateway"
        assert rig.relay.calls() == []
    finally:
        await op.close()
    assert opened == set(), f"files opened during the call: {opened}"
    after = _listing(tmp), _listing(Path(tempfile.gettempdir()))
    new = (after[0] - before[0]) | (after[1] - before[1])
    audio_like = {p for p in new if p.rsplit(".", 1)[-1].lower() in ("wav", "ogg", "opus", "webm", "mp3", "raw", "pcm")}
    assert audio_like == set(), audio_like
    assert {
        p for p in after[0] - before[0] if "/outbox" not in p and not p.endswith(("-wal", "-shm", "-journal"))
    } == set()

    async def history() -> list[dict[str, Any]]:
        events = (await rig.alarm(alarm_id))["events"]
        return [e for e in events if (e.get("code") or "").startswith("call.")]

    async def ended() -> list[dict[str, Any]] | None:
        calls = await history()
        return calls if any(e["code"] == "call.ended" for e in calls) else None

    calls: list[dict[str, Any]] = await eventually(ended, timeout=10)
    codes = [e["code"] for e in calls]
    assert codes == ["call.ringing", "call.answered", "call.ended"], codes
    answered = calls[1]
    assert answered["actor"] == "op" and answered["params"]["unit_id"] == "unit1"
    assert calls[2]["params"]["reason"] == "operator" and calls[2]["params"]["duration_s"] >= 0
    alarm = await rig.alarm(alarm_id)
    assert alarm["state"] == "new"  # a call does not take the alarm out of the queue
    async with engine_scope(rig.settings.gateway_database_url) as engine:
        async with session_factory(engine)() as session:
            entries = await audit.client_entries(session, "astrid")
    ended_entries = [e for e in entries if e.action == "voice.call_ended"]
    assert ended_entries and ended_entries[-1].details["operator"] == "op"


async def test_refusals_are_coded_and_logged(rig: Rig) -> None:
    alarm_id = await rig.unit.press(pendant=0)
    call = await ringing_call(rig, alarm_id)
    op = Operator(rig.settings)
    try:
        offer = await op.offer()
        # a technician may not answer
        async with await rig.http("tech") as http:
            r = await http.post(f"/gw/api/v1/voice/calls/{call['call_id']}/answer", json=offer)
        assert r.status_code == 403 and r.json()["code"] == "voice.role_refused", r.text
        # a patrol may not answer a call for an alarm not assigned to it
        async with await rig.http("pat") as http:
            r = await http.post(f"/gw/api/v1/voice/calls/{call['call_id']}/answer", json=offer)
        assert r.status_code == 403 and r.json()["code"] == "voice.not_assigned", r.text
        # another client's unit, on this alarm's right
        body = {**offer, "device_id": "pend1", "alarm_id": alarm_id, "unit_id": "unit2"}
        async with await rig.http("op") as http:
            r = await http.post("/gw/api/v1/voice/callback", json=body)
        assert r.status_code == 403 and r.json()["code"] == "voice.other_client", r.text
        assert rig.other.current is None  # bertil's unit was never asked
        # a resolved alarm: no call
        await rig.unit.hang_up()
        alarm = await rig.alarm(alarm_id)
        async with await rig.http("op") as http:
            await http.post(f"/api/v1/alarms/{alarm['id']}/acknowledge", json={})
            r = await http.post(f"/api/v1/alarms/{alarm['id']}/resolve", json={"outcome": "ok"})
            assert r.status_code == 200, r.text
            r = await http.post("/gw/api/v1/voice/callback", json={**body, "unit_id": "unit1"})
        assert r.status_code == 403 and r.json()["code"] == "voice.alarm_closed", r.text
    finally:
        await op.close()
    async with engine_scope(rig.settings.receiver_database_url) as engine:
        async with session_factory(engine)() as session:
            refused = [e for e in await audit.client_entries(session, "astrid") if e.action == "voice.refused"]
    assert {"voice.role_refused", "voice.not_assigned", "voice.alarm_closed"} <= {e.details["code"] for e in refused}
    async with engine_scope(rig.settings.gateway_database_url) as engine:
        async with session_factory(engine)() as session:
            refused = [e for e in await audit.client_entries(session, "astrid") if e.action == "voice.refused"]
    assert any(e.details["code"] == "voice.other_client" for e in refused)


async def test_a_call_that_fails_is_said_plainly_and_the_alarm_stays(rig: Rig) -> None:
    """A callback to a unit that does not answer (its voice connection gone) fails with a code; the alarm stays
    open; a unit's call for another client's alarm never rings."""
    alarm_id = await rig.other.device.press("assistance")
    await rig.other.device.wait_for_status(alarm_id, "stored", 15)
    await eventually(lambda: rig.in_queue(alarm_id), timeout=15)  # a callback needs the receiver's queue item
    # unit1 calls for bertil's alarm: refused to the unit, it never rings
    forged = VoiceCall(call_id="forged-1", alarm_id=alarm_id, alarm_device_id="unit2", ts=utcnow())
    assert rig.unit.publish_voice(DeviceTopic.VOICE_CALL, forged.model_dump_json().encode())
    await rig.other.stop_voice()  # the unit's voice line is gone; its alarm connection (status online) is not
    try:
        op = Operator(rig.settings)
        body = {**(await op.offer()), "device_id": "unit2", "alarm_id": alarm_id}
        async with await rig.http("op") as http:
            r = await http.post("/gw/api/v1/voice/callback", json=body)
        await op.close()
        assert r.status_code == 502 and r.json()["code"] == "voice.unit_no_answer", r.text
    finally:
        await rig.other.start_voice()
    alarm = await rig.alarm(alarm_id)
    assert alarm["state"] == "new"

    async def failed() -> bool:
        events = (await rig.alarm(alarm_id))["events"]
        return any(e.get("code") == "call.failed" and e["params"]["reason"] == "unit_no_answer" for e in events)

    assert await eventually(failed, timeout=10)
    assert all(c.call_id != "forged-1" for c in rig.relay.calls())
    await rig.unit.wait_for(lambda: rig.unit.refusals, 10)
    assert rig.unit.refusals == [("forged-1", "other_client")]
    async with engine_scope(rig.settings.gateway_database_url) as engine:
        async with session_factory(engine)() as session:
            entries = await audit.client_entries(session, "astrid")
    assert any(e.action == "voice.ring_refused" and e.details["code"] == "other_client" for e in entries), entries


async def test_bad_voice_signalling_is_refused_counted_and_harmless(rig: Rig) -> None:
    from prometheus_client import REGISTRY

    def count(kind: str, code: str) -> float:
        return REGISTRY.get_sample_value("trygg_gateway_voice_rejected_total", {"kind": kind, "code": code}) or 0.0

    def oversize() -> float:  # refused by the gateway's dispatcher before any feature sees it
        return REGISTRY.get_sample_value("trygg_gateway_rejected_total", {"code": "oversize"}) or 0.0

    before = {(k, c): count(k, c) for k, c in (("call", "invalid"), ("answer", "invalid"))}
    too_big = oversize()
    assert rig.unit.publish_voice(DeviceTopic.VOICE_CALL, b'{"call_id": "x", "alarm_id": 7}')
    assert rig.unit.publish_voice(DeviceTopic.VOICE_CALL, b"{" + b" " * 9000 + b"}")
    assert rig.unit.publish_voice(DeviceTopic.VOICE_ANSWER, b"not json")

    def counted() -> bool:
        return all(count(k, c) > n for (k, c), n in before.items()) and oversize() > too_big

    await eventually(counted, timeout=10)
    assert rig.relay.calls() == []
    # the relay still works: a unit's call for its own stored alarm rings
    alarm_id = await rig.unit.press(pendant=0)
    call = await ringing_call(rig, alarm_id)
    await rig.unit.hang_up()

    async def gone() -> bool:
        return rig.relay.call(call["call_id"]) is None

    assert await eventually(gone, timeout=10)


async def test_a_callback_to_an_offline_unit_is_said_plainly(rig: Rig) -> None:
    alarm_id = await rig.other.device.press("assistance")
    await rig.other.device.wait_for_status(alarm_id, "stored", 15)
    await rig.other.device.stop()  # the unit says offline (retained status)
    try:
        await eventually(lambda: rig.relay.is_offline("unit2"), timeout=10)
        op = Operator(rig.settings)
        body = {**(await op.offer()), "device_id": "unit2", "alarm_id": alarm_id}
        async with await rig.http("op") as http:
            r = await http.post("/gw/api/v1/voice/callback", json=body)
        await op.close()
        assert r.status_code == 502 and r.json()["code"] == "voice.unit_offline", r.text
        assert rig.other.current is None
    finally:
        await rig.other.device.start()
    assert (await rig.alarm(alarm_id))["state"] == "new"


async def test_a_unit_that_goes_away_mid_call_ends_the_call_plainly(rig: Rig) -> None:
    """The unit's side of a live call closes without its voice/end (the unit died or lost its network): the gateway
    ends the call as broken (``ice_failed``, said plainly in the console) instead of keeping it live until the cap;
    the alarm stays open."""
    alarm_id = await rig.unit.press(pendant=0)
    call = await ringing_call(rig, alarm_id)
    op = Operator(rig.settings)
    try:
        async with await rig.http("op") as http:
            r = await http.post(f"/gw/api/v1/voice/calls/{call['call_id']}/answer", json=await op.offer())
            assert r.status_code == 200, r.text
        await op.accept(r.json())
        unit_call = rig.unit.current
        assert unit_call is not None
        await asyncio.wait_for(unit_call.connected.wait(), 15)
        await rig.unit.stop_voice()  # nothing more from the unit on its voice line...
        await unit_call.pc.close()  # ...and its peer connection gone
        try:

            async def ended() -> list[dict[str, Any]] | None:
                events = [  # this call's end (the press may be a repeat on an item with earlier calls)
                    e
                    for e in (await rig.alarm(alarm_id))["events"]
                    if e.get("code") == "call.ended" and e["params"].get("call_id") == call["call_id"]
                ]
                return events or None

            events: list[dict[str, Any]] = await eventually(ended, timeout=20, interval=0.2)
            assert events[-1]["params"]["reason"] == "ice_failed", events
            assert rig.relay.calls() == []
            assert (await rig.alarm(alarm_id))["state"] == "new"  # the alarm stays in the queue
        finally:
            await rig.unit.start_voice()
    finally:
        await op.close()
