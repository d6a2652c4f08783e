"""SIA DC-09 end to end against a dialler nobody here wrote (my-dc09-spt, testing/dc09.py): TCP and UDP, plain
and AES; the answer a unit gets (ACK after the commit, NAK, DUH) and what the store holds afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from devices import DeviceType
from gateway.fleet.feature import FleetFeature
from gateway.models import StoredAlarm
from gateway.protocols.dc09.accounts import add_account
from gateway.protocols.dc09.metrics import REFUSED
from gateway.protocols.dc09.receiver import Dc09Receiver
from gateway.service import Gateway
from testing.broker import Broker, free_port
from testing.dc09 import Dialler, Transport
from testing.harness import Api, create_user, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings

KEY_128 = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
KEY_256 = bytes.fromhex("00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF")

# account -> (device, key)
UNITS: dict[str, tuple[str, bytes | None]] = {
    "1234": ("carephone-plain", None),
    "5678": ("carephone-aes128", KEY_128),
    "9ABC": ("panel-aes256", KEY_256),
}


@dataclass
class Env:
    settings: Settings
    gateway: Gateway
    port: int

    def dialler(self, account: str, transport: Transport, key: bytes | None = None, **kw: Any) -> Dialler:
        return Dialler(self.port, account, transport=transport, key=key or UNITS.get(account, ("", None))[1], **kw)

    async def alarms(self, device_id: str) -> list[StoredAlarm]:
        async with self.gateway.sessions() as session:
            rows = await session.scalars(
                select(StoredAlarm).where(StoredAlarm.device_id == device_id).order_by(StoredAlarm.stored_at)
            )
            return list(rows.all())


async def register(settings: Settings, units: dict[str, tuple[str, bytes | None]], **kw: Any) -> None:
    await prepare_stores(settings, {device_id: DeviceType.BASE_UNIT for device_id, _ in units.values()})
    async with engine_scope(settings.gateway_database_url) as engine, session_factory(engine).begin() as session:
        for account, (device_id, key) in units.items():
            await add_account(session, account, device_id, key=key.hex() if key else None, **kw)


@asynccontextmanager
async def dc09_env(broker: Broker, tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    s = make_settings(tmp_path, broker.url, dc09_port=free_port(), **overrides)
    await register(s, UNITS)
    async with running_receiver(s), running_gateway(s) as gw:
        receiver = gw.feature(Dc09Receiver)
        assert {x.transport for x in receiver.listening} == {"tcp", "udp"}
        yield Env(s, gw, receiver.listening[0].port)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_alarm_restore_and_link_test_plain_and_aes(broker: Broker, tmp_path: Path, transport: Transport) -> None:
    async with dc09_env(broker, tmp_path) as env:
        fleet = env.gateway.feature(FleetFeature)
        for account, (device_id, _) in UNITS.items():
            unit = env.dialler(account, transport)
            # a medical alarm (Contact ID 100) and a fire alarm (SIA FA): ACK means it is in the store
            assert (await unit.send(*Dialler.cid(account, "100", zone="003")))[1] == "ACK"
            assert (await unit.send(*Dialler.sia(account, "FA", zone="501")))[1] == "ACK"
            stored = await env.alarms(device_id)
            assert [(a.type, a.priority) for a in stored] == [("assistance", 7), ("smoke", 9)]
            assert all(a.payload["protocol"] == "dc09" for a in stored)
            assert stored[0].payload["device_extra"]["dc09"]["code"] == "CID:100"
            # its restore (qualifier 3) cancels the medical alarm, after the commit
            assert (await unit.send(*Dialler.cid(account, "100", qualifier="3", zone="003")))[1] == "ACK"
            stored = await env.alarms(device_id)
            assert stored[0].cancelled_at is not None and stored[1].cancelled_at is None
            # a NULL link test is acknowledged and feeds supervision: the unit is online
            assert await unit.link_test() == "ACK"
            assert await eventually(lambda d=device_id: fleet.is_online(d), 10)  # type: ignore[misc]
            assert len(await env.alarms(device_id)) == 2, "a link test is not an alarm"


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_refusals_wrong_key_stale_time_unknown_account(
    broker: Broker, tmp_path: Path, transport: Transport
) -> None:
    async with dc09_env(broker, tmp_path) as env:
        content = Dialler.sia("5678", "MA", zone="1")
        # the wrong key: the content does not decrypt -> DUH, nothing stored
        assert (await env.dialler("5678", transport, key=bytes(16)).send(*content))[1] == "DUH"
        # a plain frame for an account that encrypts -> DUH
        plain = Dialler(env.port, "5678", transport=transport)
        assert (await plain.send(*content))[1] == "DUH"
        # a time stamp two minutes behind, then 30 s ahead -> NAK (with the receiver's time stamp)
        unit = env.dialler("5678", transport)
        assert (await unit.send(*content, offset_s=-120))[1] == "NAK"
        assert (await unit.send(*content, offset_s=30))[1] == "NAK"
        assert await env.alarms("carephone-aes128") == []
        # within the window (10 s behind) it is accepted
        assert (await unit.send(*content, offset_s=-10))[1] == "ACK"
        assert len(await env.alarms("carephone-aes128")) == 1
        # an account nobody registered -> DUH, and nothing is stored for anyone
        stranger = Dialler(env.port, "7777", transport=transport)
        assert (await stranger.send(*Dialler.sia("7777", "MA")))[1] == "DUH"
        assert await stranger.link_test() == "DUH"
        # a bad CRC -> NAK
        n = 42
        raw = bytearray(unit.frame(*Dialler.sia("5678", "FA"), n))
        raw[1:5] = b"0000" if raw[1:5] != b"0000" else b"FFFF"
        assert await unit.send_raw(bytes(raw), n) == "NAK"
        assert len(await env.alarms("carephone-aes128")) == 1


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_duplicate_sequence_is_acked_again_and_stored_once(
    broker: Broker, tmp_path: Path, transport: Transport
) -> None:
    async with dc09_env(broker, tmp_path) as env:
        for account in ("1234", "9ABC"):
            device_id = UNITS[account][0]
            unit = env.dialler(account, transport)
            content = Dialler.sia(account, "QA", zone="2")
            seq, answer = await unit.send(*content)
            assert answer == "ACK"
            # the same message again: a fresh frame (and, encrypted, a fresh time stamp), the same sequence number
            for _ in range(3):
                assert (await unit.send(*content, seq=seq))[1] == "ACK"
            stored = await env.alarms(device_id)
            assert len(stored) == 1 and stored[0].type == "assistance" and stored[0].priority == 8
            # the next sequence number with the same content is a new alarm
            assert (await unit.send(*content))[1] == "ACK"
            assert len(await env.alarms(device_id)) == 2


async def test_unmapped_and_unreadable_content(broker: Broker, tmp_path: Path) -> None:
    async with dc09_env(broker, tmp_path) as env:
        unit = env.dialler("1234", "tcp")
        # a well-formed code with no mapping: stored as a generic alarm with its raw code
        assert (await unit.send(*Dialler.sia("1234", "ZZ", zone="9")))[1] == "ACK"
        assert (await unit.send(*Dialler.cid("1234", "999")))[1] == "ACK"
        stored = await env.alarms("carephone-plain")
        assert [(a.type, a.payload["device_extra"]["dc09"]["code"]) for a in stored] == [
            ("generic_alarm", "SIA:ZZ"),
            ("generic_alarm", "CID:999"),
        ]
        # content that is no Contact ID event at all: DUH, kept as a dead letter, nothing stored
        assert (await unit.send("ADM-CID", "#1234|hello]"))[1] == "DUH"
        assert len(await env.alarms("carephone-plain")) == 2


async def test_malformed_and_oversize_frames_never_stop_the_receiver(broker: Broker, tmp_path: Path) -> None:
    def refused(code: str) -> float:
        return REFUSED.labels(code)._value.get()  # type: ignore[attr-defined,no-any-return]

    before = {code: refused(code) for code in ("oversize", "format", "length")}
    async with dc09_env(broker, tmp_path, dc09_max_frame_bytes=256) as env:
        for garbage in (b"\n\r", b"\nXXXXYYYY\r", b"\n0000" + b"A" * 600 + b"\r", b"\x00\xff" * 40 + b"\r"):
            reader, writer = await asyncio.open_connection("127.0.0.1", env.port)
            writer.write(garbage)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(1024), 10)
            assert b'"NAK"' in answer or b'"DUH"' in answer or answer == b""
            writer.close()
        loop = asyncio.get_running_loop()
        got: asyncio.Queue[bytes] = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", env.port))
        transport.sendto(b"\n" + b"Z" * 2000 + b"\r")
        assert b'"NAK"' in await asyncio.wait_for(got.get(), 10)
        transport.close()
        # each refusal counted (and logged) by its reason
        assert refused("oversize") >= before["oversize"] + 2  # the long TCP frame and the datagram
        assert refused("format") >= before["format"] + 2
        # still answering real units afterwards
        assert (await env.dialler("1234", "udp").send(*Dialler.sia("1234", "PA")))[1] == "ACK"
        assert (await env.dialler("1234", "tcp").send(*Dialler.sia("1234", "TA")))[1] == "ACK"


async def test_the_package_dialler_delivers_through_its_own_queue(broker: Broker, tmp_path: Path) -> None:
    """my-dc09-spt's own ``send_msg`` (its queue and event thread; it returns once the message is ACKed and raises
    otherwise): an AES alarm over UDP is in the store the moment the dialler has its ACK."""
    from my_dc09_spt.dc09_spt import dc09_spt

    async with dc09_env(broker, tmp_path) as env:
        spt = dc09_spt("5678")
        spt.set_path("main", "primary", "127.0.0.1", env.port, key=KEY_128, type="udp")
        await asyncio.to_thread(spt.send_msg, "CID", {"code": "301", "q": "1", "zone": "1"})  # AC loss
        stored = await env.alarms("carephone-aes128")
        assert [(a.type, a.cancelled_at) for a in stored] == [("mains_lost", None)]
        await asyncio.to_thread(spt.send_msg, "CID", {"code": "301", "q": "3", "zone": "1"})  # AC restored
        assert [a.cancelled_at is not None for a in await env.alarms("carephone-aes128")] == [True]
        # a restore with nothing open to cancel is filed as its restored type
        await asyncio.to_thread(spt.send_msg, "SIA", {"code": "YR", "zone": "1"})
        assert [a.type for a in await env.alarms("carephone-aes128")] == ["mains_lost", "battery_ok"]


async def test_unit_silent_past_its_interval_raises_offline(broker: Broker, tmp_path: Path) -> None:
    fast = {
        "heartbeat_interval_alarm_s": 1.5,
        "heartbeat_grace_s": 0.5,
        "supervision_period_s": 0.1,
        "online_settle_s": 0.0,
        "health_flush_s": 0.2,
        "offline_cap_alarm_s": 2.0,
    }
    async with dc09_env(broker, tmp_path, **fast) as env:
        fleet = env.gateway.feature(FleetFeature)
        unit = env.dialler("9ABC", "udp")
        # link tests keep it online: each one is a heartbeat
        assert await unit.link_test() == "ACK"
        assert await eventually(lambda: fleet.is_online("panel-aes256"), 10)

        # then silence: the same technical alarm an MQTT device gets
        async def offline() -> list[StoredAlarm]:
            return [a for a in await env.alarms("panel-aes256") if a.type == "device_offline"]

        raised = await eventually(offline, 30)
        assert raised[0].payload.get("text_code") == "device.silent"
        assert fleet.is_online("panel-aes256") is False
        # a NULL brings it back online
        assert await unit.link_test() == "ACK"
        assert await eventually(lambda: fleet.is_online("panel-aes256"), 10)


async def test_the_console_api_shows_the_protocol(broker: Broker, tmp_path: Path) -> None:
    async with dc09_env(broker, tmp_path) as env:
        await create_user(env.settings, "op", "operator")
        api = Api(env.settings)
        await api.login("op")
        try:
            assert (await env.dialler("1234", "tcp").send(*Dialler.cid("1234", "110", zone="007")))[1] == "ACK"

            async def shown() -> list[dict[str, Any]]:
                return [a for a in await api.alarms() if a["device_id"] == "carephone-plain"]

            rows = await eventually(shown, 20)
            assert rows[0]["type"] == "smoke"
            assert rows[0]["details"]["protocol"] == "dc09"
        finally:
            await api.close()


async def test_a_resend_just_after_midnight_is_the_same_alarm(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alarm id carries the receiver's UTC day; a resend in the first minutes of the next day finds yesterday's."""
    import gateway.protocols.dc09.receiver as receiver_module

    clock = [datetime(2026, 11, 30, 23, 59, 50, tzinfo=UTC)]
    monkeypatch.setattr(receiver_module, "utcnow", lambda: clock[0])
    async with dc09_env(broker, tmp_path) as env:
        unit = env.dialler("1234", "tcp")
        content = Dialler.sia("1234", "MA", zone="4")
        seq, answer = await unit.send(*content)
        assert answer == "ACK"
        clock[0] = datetime(2026, 12, 1, 0, 3, tzinfo=UTC)
        assert (await unit.send(*content, seq=seq))[1] == "ACK"
        assert len(await env.alarms("carephone-plain")) == 1
        # past the grace: the same sequence number and content is taken as a new alarm (a wrapped sequence number)
        clock[0] = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
        assert (await unit.send(*content, seq=seq))[1] == "ACK"
        assert len(await env.alarms("carephone-plain")) == 2


async def test_a_connection_flood_is_capped(broker: Broker, tmp_path: Path) -> None:
    async with dc09_env(broker, tmp_path, dc09_max_connections=2) as env:
        idle = [await asyncio.open_connection("127.0.0.1", env.port) for _ in range(2)]
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", env.port)
        assert await asyncio.wait_for(extra_reader.read(100), 10) == b"", "the third connection is closed at once"
        extra_writer.close()
        # an open one still works (and once the idle ones close, new ones are taken again)
        reader, writer = idle[0]
        writer.write(env.dialler("1234", "tcp").frame(*Dialler.sia("1234", "MA"), 7))
        await writer.drain()
        assert b'"ACK"0007' in await asyncio.wait_for(reader.readuntil(b"\r"), 10)
        for _, w in idle:
            w.close()

        async def accepted_again() -> bool:
            return (await env.dialler("1234", "tcp").send(*Dialler.sia("1234", "TA")))[1] == "ACK"

        assert await eventually(accepted_again, 20, interval=0.2)
