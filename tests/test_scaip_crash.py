"""No SCAIP alarm lost, none twice: the gateway SIGKILLed on both sides of its commit while units send; the units
resend (same ref) until they hear snu 0, over UDP and TCP, and every alarm is in the operators' queue exactly
once (the MQTT path's crash test, tests/test_crash.py, for SCAIP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices import DeviceType
from gateway.protocols.scaip.registry import add_unit
from testing.broker import Broker, free_port
from testing.harness import (
    Api,
    GatewayProcess,
    LiveFeedReader,
    create_user,
    make_settings,
    prepare_stores,
    running_receiver,
)
from testing.scaip import Unit, mrq
from tests.test_crash import Key, assert_queue_exactly, collect_until, wait_exit
from trygg.db import engine_scope, session_factory

UNITS = 6
WAVES = 3  # after the first, sent together: in flight when the gateway dies


@pytest.mark.parametrize("fault", ["after_commit", "before_commit"])
async def test_gateway_killed_while_units_send(broker: Broker, tmp_path: Path, fault: str) -> None:
    s = make_settings(tmp_path, broker.url, forward_backoff_max_s=0.5, scaip_port=free_port())
    devices = {f"unit-{i}": DeviceType.PENDANT for i in range(UNITS)}
    cids = {device_id: f"4671{i:04d}" for i, device_id in enumerate(devices)}
    await prepare_stores(s, devices)
    async with engine_scope(s.gateway_database_url) as engine, session_factory(engine).begin() as session:
        for device_id, cid in cids.items():
            await add_unit(session, cid, device_id)
    await create_user(s, "op", "operator")
    assert s.scaip_port is not None
    remote = ("127.0.0.1", s.scaip_port)
    units = {d: Unit(remote, cid, transport="udp" if i % 2 else "tcp") for i, (d, cid) in enumerate(cids.items())}
    expected: set[Key] = set()
    async with running_receiver(s):
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            # the batch that stores the first alarm after wave 1 kills the gateway, before or after its commit
            gw = GatewayProcess(s.model_copy(update={"fault_kill_at": f"{fault}:{UNITS + 1}"}), tmp_path / "gw.log")
            gw.start()
            try:
                for unit in units.values():
                    await unit.open()
                for device_id, unit in units.items():  # wave 1, one at a time: stored while the gateway lives
                    ref = f"w1{device_id[-1]}"
                    assert (await unit.send_until_ok(mrq(ref, unit.cid), ref, deadline_s=60)).snu == 0
                    expected.add((device_id, ref))
                later = [(d, f"w{w}{d[-1]}") for w in range(2, WAVES + 2) for d in units]
                expected |= set(later)
                sending = asyncio.gather(
                    *(units[d].send_until_ok(mrq(ref, units[d].cid), ref, deadline_s=120) for d, ref in later)
                )
                assert await wait_exit(gw) == -9, "the gateway should have been SIGKILLed by fault injection"
                assert not sending.done(), "some alarms should be unanswered after the crash"
                gw = GatewayProcess(s, tmp_path / "gw.log")
                gw.start()
                answers = await asyncio.wait_for(sending, 150)
                assert {a.snu for a in answers} == {0}
                await collect_until(feed, expected, timeout=90)
                await assert_queue_exactly(api, expected)
            finally:
                gw.stop()
                for unit in units.values():
                    await unit.close()
        await api.close()
