"""SCAIP against a peer nobody here wrote: SIPp (Debian's sip-tester) runs the scenarios in tests/sipp/, over UDP
and TCP, against a running gateway; each scenario waits for the <mrs> and checks its ref and snu, and the test
checks what the store holds afterwards."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from devices import DeviceType
from gateway.models import OutboxRow, StoredAlarm
from gateway.protocols.scaip.feature import ScaipFeature
from gateway.protocols.scaip.registry import add_unit
from gateway.service import Gateway
from testing.broker import Broker, free_port
from testing.harness import make_settings, prepare_stores, running_gateway

SCENARIOS = Path(__file__).parent / "sipp"
SIPP = shutil.which("sipp")
pytestmark = pytest.mark.skipif(SIPP is None, reason="SIPp (Debian sip-tester) is not installed; .ci/run installs it")

CID = "4670001"  # registered: its controller entry maps to the pendant
UNKNOWN_CID = "999000111"


@dataclass
class Running:
    gateway: Gateway
    tmp: Path

    @property
    def feature(self) -> ScaipFeature:
        return self.gateway.feature(ScaipFeature)

    def port(self, transport: str) -> int:
        port = self.feature.server.udp_port if transport == "udp" else self.feature.server.tcp_port
        assert port
        return port

    async def sipp(self, scenario: str, transport: str, **keys: str) -> tuple[int, str]:
        """Run one SIPp call of ``scenario``; its exit code (0: every check passed) and its error log."""
        assert SIPP is not None
        errors = self.tmp / f"{scenario}-{transport}-errors.log"
        args = [SIPP, f"127.0.0.1:{self.port(transport)}", "-sf", str(SCENARIOS / f"{scenario}.xml")]
        args += ["-m", "1", "-t", "u1" if transport == "udp" else "t1", "-i", "127.0.0.1", "-p", str(free_port())]
        args += ["-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err", "-error_file", str(errors)]
        for name, value in {"cid": CID, "dty": "0003", "stc": "0010", **keys}.items():
            args += ["-key", name, value]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=self.tmp
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 90)
        log = errors.read_text(errors="replace") if errors.exists() else ""
        return proc.returncode or 0, log + stderr.decode(errors="replace")

    async def alarms(self) -> list[StoredAlarm]:
        async with self.gateway.sessions() as session:
            return list((await session.scalars(select(StoredAlarm).order_by(StoredAlarm.stored_at))).all())

    async def outbox(self, kind: str) -> int:
        async with self.gateway.sessions() as session:
            return len((await session.scalars(select(OutboxRow.id).where(OutboxRow.kind == kind))).all())


@pytest_asyncio.fixture
async def running(broker: Broker, tmp_path: Path) -> AsyncIterator[Running]:
    settings = make_settings(tmp_path, broker.url, scaip_port=0)
    await prepare_stores(settings, {"pendant-1": DeviceType.PENDANT})
    async with running_gateway(settings) as gw:
        async with gw.sessions.begin() as session:
            await add_unit(session, CID, "pendant-1", mre=1, hbi=2)
        yield Running(gw, tmp_path)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_alarm_is_answered_ok_after_it_is_stored(running: Running, transport: str) -> None:
    code, log = await running.sipp("alarm", transport)
    assert code == 0, log
    [alarm] = await running.alarms()
    assert (alarm.device_id, alarm.alarm_id, alarm.type) == ("pendant-1", "A1", "assistance")
    assert alarm.payload["protocol"] == "scaip"
    assert await running.outbox("alarm") == 1


async def test_a_fall_detectors_automatic_alarm_is_a_fall(running: Running) -> None:
    code, log = await running.sipp("alarm", "udp", dty="0005", stc="0009")
    assert code == 0, log
    [alarm] = await running.alarms()
    assert (alarm.type, alarm.priority) == ("fall", 8)


async def test_unmapped_code_is_stored_as_a_generic_alarm_with_its_code(running: Running) -> None:
    code, log = await running.sipp("alarm", "udp", stc="0999")
    assert code == 0, log
    [alarm] = await running.alarms()
    assert alarm.type == "generic_alarm"
    assert alarm.payload["device_extra"]["raw_code"] == "0999"  # type: ignore[index]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_duplicate_ref_is_answered_ok_again_and_stored_once(running: Running, transport: str) -> None:
    code, log = await running.sipp("duplicate", transport)
    assert code == 0, log
    assert [a.alarm_id for a in await running.alarms()] == ["D1"]
    assert await running.outbox("alarm") == 1


async def test_reset_cancels_the_alarm_with_the_same_ref(running: Running) -> None:
    code, log = await running.sipp("reset", "udp")
    assert code == 0, log
    [alarm] = await running.alarms()
    assert alarm.alarm_id == "R1" and alarm.cancelled_at is not None
    assert await running.outbox("cancel") == 1


async def test_heartbeat_is_answered_with_the_units_configuration_and_stores_nothing(running: Running) -> None:
    code, log = await running.sipp("heartbeat", "tcp")
    assert code == 0, log
    assert await running.alarms() == []


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_malformed_xml_is_answered_invalid_format(running: Running, transport: str) -> None:
    code, log = await running.sipp("malformed_xml", transport)
    assert code == 0, log
    assert await running.alarms() == []


async def test_unknown_controller_is_not_treated_and_nothing_is_stored(running: Running) -> None:
    code, log = await running.sipp("unknown_unit", "udp", cid=UNKNOWN_CID)
    assert code == 0, log
    assert await running.alarms() == []


async def test_oversize_request_is_answered_too_long(running: Running) -> None:
    code, log = await running.sipp("oversize", "udp", pad="x" * 2100)
    assert code == 0, log
    assert await running.alarms() == []


async def test_a_scenario_expecting_the_wrong_answer_fails(running: Running) -> None:
    """The checks can fail: the unknown-unit scenario (expects snu 5) sent by a registered unit gets snu 0."""
    code, _ = await running.sipp("unknown_unit", "udp")
    assert code != 0
