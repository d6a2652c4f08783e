"""No DC-09 alarm lost, none twice: ``trygg gateway`` SIGKILLed on either side of its commit while units send, the
units (my-dc09-spt's frames and transports) repeat each message until ACKed, and the operators' queue ends up with
every alarm exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from testing.broker import Broker, free_port
from testing.dc09 import Dialler
from testing.harness import Api, GatewayProcess, create_user, make_settings, running_receiver
from testing.wait import eventually
from tests.test_dc09 import register

KEY = bytes.fromhex("0F0E0D0C0B0A09080706050403020100")
# account -> (device, key, transport)
UNITS = {
    "1001": ("crash-tcp-plain", None, "tcp"),
    "1002": ("crash-tcp-aes", KEY, "tcp"),
    "1003": ("crash-udp-plain", None, "udp"),
    "1004": ("crash-udp-aes", KEY, "udp"),
}
WAVES = 4

Key = tuple[str, str]


async def wait_exit(gw: GatewayProcess, timeout: float = 60) -> int:
    assert gw.proc is not None
    return await asyncio.wait_for(asyncio.to_thread(gw.proc.wait), timeout)


@pytest.mark.parametrize("fault", ["after_commit", "before_commit"])
async def test_gateway_killed_while_units_send(broker: Broker, tmp_path: Path, fault: str) -> None:
    s = make_settings(tmp_path, broker.url, dc09_port=free_port(), forward_backoff_max_s=0.5)
    await register(s, {account: (device, key) for account, (device, key, _) in UNITS.items()})
    await create_user(s, "op", "operator")
    units = {
        account: Dialler(s.dc09_port or 0, account, transport=transport, key=key, timeout_s=3.0)  # type: ignore[arg-type]
        for account, (_, key, transport) in UNITS.items()
    }
    sent: set[Key] = set()

    async def send(account: str, code: str) -> None:
        seq = await units[account].send_until_acked(*Dialler.cid(account, code, zone="001"), timeout_s=120)
        sent.add((UNITS[account][0], f"{seq:04d}"))

    async with running_receiver(s):
        api = Api(s)
        await api.login("op")
        # the gateway kills itself in the batch that stores the first alarm after wave 1
        gw = GatewayProcess(s.model_copy(update={"fault_kill_at": f"{fault}:{len(UNITS) + 1}"}), tmp_path / "gw.log")
        gw.start()
        try:
            for account in units:  # wave 1, one at a time: stored while the gateway lives
                await send(account, "100")
            # waves 2..: every unit sends at once; the gateway dies under them, they keep repeating
            sending = asyncio.gather(*(send(a, c) for c in ("101", "110", "120")[: WAVES - 1] for a in units))
            assert await wait_exit(gw) == -9, "the gateway should have been SIGKILLed by fault injection"
            assert len(sent) < len(UNITS) * WAVES, "some messages should still be unacknowledged"
            gw = GatewayProcess(s, tmp_path / "gw.log")
            gw.start()
            await asyncio.wait_for(sending, 150)
            assert len(sent) == len(UNITS) * WAVES

            async def queue() -> list[dict[str, Any]] | None:
                # an alarm of the same type as its unit's open one is collapsed into that item (issue 8): counted
                rows = await api.alarms(all_states="true", limit=5000)
                return rows if sum(1 + r["repeats"] for r in rows) >= len(sent) else None

            rows: list[dict[str, Any]] = await eventually(queue, 60, interval=0.2)  # type: ignore[arg-type]
            items = [(r["device_id"], r["details"]["device_extra"]["dc09"]["seq"]) for r in rows]
            assert set(items) <= sent
            alarms = [(r["device_id"], r["alarm_id"]) for r in rows]
            for row in rows:  # each repeat once in its item's history, under its own alarm id
                detail = (await api.http.get(f"/api/v1/alarms/{row['id']}")).json()
                repeats = [
                    (row["device_id"], e["params"]["alarm_id"]) for e in detail["events"] if e["action"] == "repeated"
                ]
                assert len(repeats) == row["repeats"], "an item's count and its history disagree"
                alarms += repeats
            assert len(alarms) == len(set(alarms)), "an alarm shows twice"
            assert len(alarms) == len(sent)
        finally:
            gw.stop()
            await api.close()
