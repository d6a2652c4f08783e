"""The SCAIP receiver with a unit written for tests (testing/scaip.py): supervision of a silent unit, HOLD and
BUSY, the answer in the 200 OK, SIP-level refusals on raw sockets, and the technicians' unit API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlalchemy import select

from devices import DeviceType
from gateway.models import StoredAlarm
from gateway.protocols.scaip.feature import ScaipFeature
from gateway.protocols.scaip.registry import add_unit
from gateway.records import Outcome
from gateway.service import Gateway
from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_gateway, running_receiver
from testing.scaip import Unit, message, mrq
from testing.wait import eventually

CID = "4670002"
OTHER_CID = "4670003"  # answered in the 200 OK
THIRD_CID = "4670004"


def rejected(code: str) -> float:
    return REGISTRY.get_sample_value("trygg_scaip_rejected_total", {"code": code}) or 0.0


async def alarms(gw: Gateway, device_id: str | None = None) -> list[StoredAlarm]:
    async with gw.sessions() as session:
        stmt = select(StoredAlarm).order_by(StoredAlarm.stored_at)
        if device_id is not None:
            stmt = stmt.where(StoredAlarm.device_id == device_id)
        return list((await session.scalars(stmt)).all())


@pytest_asyncio.fixture
async def gateway(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    extra: dict[str, Any] = getattr(request, "param", {})
    settings = make_settings(tmp_path, broker.url, scaip_port=0, **extra)
    await prepare_stores(settings, {"pendant-2": DeviceType.PENDANT, "pendant-3": DeviceType.PENDANT})
    async with running_gateway(settings) as gw:
        async with gw.sessions.begin() as session:
            await add_unit(session, CID, "pendant-2", hbi=1)
            await add_unit(session, OTHER_CID, "pendant-3", mrs_in_200=True)
            await add_unit(session, THIRD_CID, "pendant-3")
        yield gw


def ports(gw: Gateway) -> tuple[int, int]:
    server = gw.feature(ScaipFeature).server
    assert server.udp_port and server.tcp_port
    return server.udp_port, server.tcp_port


FAST_SUPERVISION = {
    "heartbeat_interval_alarm_s": 1.0,
    "heartbeat_grace_s": 0.5,
    "supervision_period_s": 0.1,
    "online_settle_s": 0.0,
    "health_flush_s": 0.2,
}


@pytest.mark.parametrize("gateway", [FAST_SUPERVISION], indirect=True)
async def test_unit_silent_past_its_interval_gets_an_offline_alarm(gateway: Gateway) -> None:
    unit = await Unit(("127.0.0.1", ports(gateway)[0]), CID).open()
    try:
        answer = await unit.send(mrq("hb1", CID, mty="PI", stc=None), "hb1")
        assert answer is not None and answer.snu == 0 and b"<hbi>1</hbi>" in answer.raw

        async def offline() -> list[StoredAlarm]:
            return [a for a in await alarms(gateway, "pendant-2") if a.type == "device_offline"]

        [alarm] = await eventually(offline, 15)
        assert alarm.priority == 4
    finally:
        await unit.close()


@pytest.mark.parametrize("gateway", [{"scaip_commit_wait_s": 0.3, "scaip_max_pending": 1}], indirect=True)
async def test_slow_store_answers_hold_then_ok_and_a_full_one_busy(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store is slow (its first commit takes 2 s): the unit hears HOLD (4), a second unit BUSY (6); both
    resend and are answered OK, and each alarm is stored once."""
    core = gateway.core
    real = core.submit_alarm
    calls = 0

    async def slow_once(*args: Any, **kwargs: Any) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(2)  # the store is slow this once
        return await real(*args, **kwargs)

    monkeypatch.setattr(core, "submit_alarm", slow_once)
    udp, _ = ports(gateway)
    first, second = await Unit(("127.0.0.1", udp), CID).open(), await Unit(("127.0.0.1", udp), THIRD_CID).open()
    try:
        answer = await first.send(mrq("s1", CID), "s1")
        assert answer is not None and answer.snu == 4  # HOLD: still waiting for the commit
        busy = await second.send(mrq("s2", THIRD_CID), "s2", timeout=10)
        assert busy is not None and busy.snu == 6  # BUSY: one alarm already waits (scaip_max_pending 1)
        assert (await first.send_until_ok(mrq("s1", CID), "s1", deadline_s=30)).snu == 0
        assert (await second.send_until_ok(mrq("s2", THIRD_CID), "s2", deadline_s=30)).snu == 0
        assert [a.alarm_id for a in await alarms(gateway)] == ["s1", "s2"]
    finally:
        await first.close()
        await second.close()


async def test_answer_in_the_200_ok_for_a_unit_so_configured(gateway: Gateway) -> None:
    _, tcp = ports(gateway)
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
    try:
        local = writer.get_extra_info("sockname")[:2]
        writer.write(
            message(mrq("t1", OTHER_CID), cid=OTHER_CID, local=local, remote=("127.0.0.1", tcp), transport="tcp")
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"SIP/2.0 200 OK") and b"application/scaip+xml" in head
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        assert b"<ref>t1</ref><snu>0</snu>" in body
        assert [a.alarm_id for a in await alarms(gateway, "pendant-3")] == ["t1"]  # stored before that 200 OK
    finally:
        writer.close()


async def test_sip_level_refusals_are_answered_counted_and_survived(gateway: Gateway) -> None:
    udp, tcp = ports(gateway)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    try:
        before = {code: rejected(code) for code in ("malformed", "method", "content_type", "oversize", "unknown_unit")}
        local = sock.getsockname() if sock.getsockname()[1] else ("127.0.0.1", 0)
        good = message(mrq("g1", CID), cid=CID, local=local, remote=("127.0.0.1", udp), transport="udp")
        cases = [
            (b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK1\r\n\r\n", b"SIP/2.0 400"),
            (b"\x00\xff garbage \r\n\r\n", b"SIP/2.0 400"),
            (good.replace(b"MESSAGE sip:trygg", b"INVITE sip:trygg", 1), b"SIP/2.0 405"),
            (good.replace(b"application/scaip+xml", b"text/plain"), b"SIP/2.0 415"),
        ]
        for data, expected in cases:
            sock.sendto(data, ("127.0.0.1", udp))
            answer = await asyncio.to_thread(sock.recv, 65536)  # off the loop the gateway runs on
            assert answer.startswith(expected), answer
        assert rejected("malformed") >= before["malformed"] + 2
        assert rejected("method") == before["method"] + 1
        assert rejected("content_type") == before["content_type"] + 1
        # TCP: a header that never ends is answered 413 and the connection closed
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp)
        writer.write(b"MESSAGE sip:trygg@127.0.0.1 SIP/2.0\r\nX-Pad: " + b"a" * 10000)
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"SIP/2.0 413") and reader.at_eof()
        writer.close()
        assert rejected("oversize") == before["oversize"] + 1
        # a flood of strangers (random controller ids): look-ups are limited, the rest answered HOLD
        for i in range(300):
            stranger_body = mrq(f"f{i}", f"9{i:08d}")
            sock.sendto(
                message(stranger_body, cid="0", local=local, remote=("127.0.0.1", udp), transport="udp"),
                ("127.0.0.1", udp),
            )
        # some strangers are looked up (and refused as unknown), the rest are held back by the limit
        await eventually(lambda: rejected("lookup_limit") > 0 and rejected("unknown_unit") > before["unknown_unit"], 30)
        strangers = rejected("unknown_unit")
        assert before["unknown_unit"] < strangers <= before["unknown_unit"] + 300
        # an unknown unit is answered snu 5 and nothing is stored; a good alarm after all this is stored
        stranger = await Unit(("127.0.0.1", udp), "123456789").open()
        unit = await Unit(("127.0.0.1", udp), CID).open()
        try:
            refused = await stranger.send_until_ok(mrq("u1", "123456789"), "u1", deadline_s=30)
            assert refused.snu == 5
            assert rejected("unknown_unit") >= strangers + 1
            ok = await unit.send_until_ok(mrq("g1", CID), "g1", deadline_s=30)
            assert ok.snu == 0
        finally:
            await stranger.close()
            await unit.close()
        assert [(a.device_id, a.alarm_id) for a in await alarms(gateway)] == [("pendant-2", "g1")]
    finally:
        sock.close()


async def test_technicians_map_units_over_the_api(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, scaip_port=0)
    await prepare_stores(s, {"pendant-9": DeviceType.PENDANT})
    await create_user(s, "tech", "technician")
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s, http=True) as gw:
        tech, op = Api(s), Api(s)
        await tech.login("tech")
        await op.login("op")
        base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/scaip/units"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tech.token}"}) as http:
            r = await http.post(base, json={"cid": "4670009", "device_id": "pendant-9", "mre": 1, "hbi": 3})
            assert r.status_code == 201, r.text
            unit_id = r.json()["id"]
            assert (await http.post(base, json={"cid": "4670009", "device_id": "pendant-9"})).status_code == 409
            assert (await http.post(base, json={"cid": "46x", "device_id": "pendant-9"})).status_code == 422
            assert (await http.post(base, json={"cid": "4670010", "device_id": "nobody"})).status_code == 404
            assert [u["cid"] for u in (await http.get(base)).json()] == ["4670009"]
            denied = await http.get(base, headers={"Authorization": f"Bearer {op.token}"})
            assert denied.status_code == 403
            unit = await Unit(("127.0.0.1", ports(gw)[0]), "4670009").open()
            try:
                answer = await unit.send(mrq("p1", "4670009", mty="PI", stc=None), "p1")
                assert answer is not None and b"<mre>1</mre><hbi>3</hbi>" in answer.raw
                assert (await http.delete(f"{base}/{unit_id}")).status_code == 204
                gone = await unit.send(mrq("p2", "4670009", mty="PI", stc=None), "p2")
                assert gone is not None and gone.snu == 5
            finally:
                await unit.close()
        await tech.close()
        await op.close()


@pytest.mark.parametrize("gateway", [{"scaip_ref_window_s": 0.5}], indirect=True)
async def test_a_ref_used_again_after_the_window_is_a_new_alarm(gateway: Gateway) -> None:
    """The unit's counter came round: its old ref names a new alarm, stored beside the old one; a resend of the
    new one within the window is answered OK and stored once."""
    unit = await Unit(("127.0.0.1", ports(gateway)[0]), CID).open()
    try:
        # Start just after a second begins, so that (on a machine not too busy) the second alarm falls in the same
        # second as the first: the same type and time stamp as a resend, yet a new alarm after the window.
        await asyncio.sleep(1.01 - datetime.now(UTC).microsecond / 1e6)
        assert (await unit.send_until_ok(mrq("w1", CID), "w1")).snu == 0
        await asyncio.sleep(0.7)  # the time under test: the window passes
        assert (await unit.send_until_ok(mrq("w1", CID), "w1")).snu == 0
        assert (await unit.send_until_ok(mrq("w1", CID), "w1")).snu == 0  # a resend of the new one
        ids = [a.alarm_id for a in await alarms(gateway)]
        assert len(ids) == 2 and ids[0] == "w1" and ids[1].startswith("w1-")
    finally:
        await unit.close()


async def test_identity_picks_the_devices_own_entry_and_checks_the_caller_id(gateway: Gateway) -> None:
    """did 7 of the controller has an entry of its own (another device); an entry with crd set takes only that
    caller; an IN (information) is stored like an alarm, typed by its code."""
    async with gateway.sessions.begin() as session:
        await add_unit(session, CID, "pendant-3", did="7")
        await add_unit(session, "4670077", "pendant-3", crd="sip:unit77@example.org")
    gateway.feature(ScaipFeature).handler.forget(CID)
    unit = await Unit(("127.0.0.1", ports(gateway)[0]), CID).open()
    caller = await Unit(("127.0.0.1", ports(gateway)[0]), "4670077").open()
    try:
        assert (await unit.send_until_ok(mrq("i1", CID, did="7"), "i1")).snu == 0
        assert (await unit.send_until_ok(mrq("i2", CID, did="8"), "i2")).snu == 0
        info = mrq("i3", CID, mty="IN", stc="0016")
        assert (await unit.send_until_ok(info, "i3")).snu == 0
        bare = mrq("i6", CID, mty="IN", stc=None, ico="0042")
        assert (await unit.send_until_ok(bare, "i6")).snu == 0
        wrong = await caller.send(mrq("i4", "4670077", crd="sip:someone@else"), "i4")
        assert wrong is not None and wrong.snu == 5
        right = await caller.send(mrq("i5", "4670077", crd="sip:unit77@example.org"), "i5")
        assert right is not None and right.snu == 0
        stored = {(a.device_id, a.alarm_id, a.type) for a in await alarms(gateway)}
        assert stored == {
            ("pendant-3", "i1", "assistance"),
            ("pendant-2", "i2", "assistance"),
            ("pendant-2", "i3", "low_battery"),
            ("pendant-3", "i5", "assistance"),
            ("pendant-2", "i6", "generic_alarm"),
        }
    finally:
        await unit.close()
        await caller.close()
