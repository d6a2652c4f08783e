"""No alarm lost, none twice: the gateway killed (SIGKILL) on both sides of the commit, the receiver down,
a device restarted with an unsent alarm in its outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from devices import AckStatus, DeviceType
from firmware_sim.device import SimDevice
from gateway.models import OutboxRow
from testing.broker import Broker
from testing.harness import (
    Api,
    GatewayProcess,
    LiveFeedReader,
    RawDevice,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings

Key = tuple[str, str]


async def wait_exit(gw: GatewayProcess, timeout: float = 30) -> int:
    assert gw.proc is not None
    return await asyncio.wait_for(asyncio.to_thread(gw.proc.wait), timeout)


async def collect_until(feed: LiveFeedReader, expected: set[Key], timeout: float = 60) -> None:
    """Until the live feed has shown every expected alarm: as a queue item of its own, or collapsed into its device's
    open item of the same type (counted in the item's ``repeats``, issue 8)."""
    want: dict[str, int] = {}
    for device_id, _ in expected:
        want[device_id] = want.get(device_id, 0) + 1
    items: dict[int, dict[str, Any]] = {}  # the latest state of each item seen

    def covered(device_id: str) -> int:
        return sum(1 + int(d.get("repeats", 0)) for d in items.values() if d["device_id"] == device_id)

    async with asyncio.timeout(timeout):
        while any(covered(device_id) < n for device_id, n in want.items()):
            event, data = await feed.events.get()
            if event == "alarm":
                items[data["id"]] = data


async def assert_queue_exactly(api: Api, expected: set[Key]) -> None:
    """Every expected alarm exactly once: a queue item of its own, or a repeat collapsed into one (its history)."""
    rows = await api.alarms(all_states="true", limit=5000)
    keys = [(r["device_id"], r["alarm_id"]) for r in rows]
    for row in rows:
        detail = (await api.http.get(f"/api/v1/alarms/{row['id']}")).json()
        repeats = [(row["device_id"], e["params"]["alarm_id"]) for e in detail["events"] if e["action"] == "repeated"]
        assert len(repeats) == row["repeats"], "an item's count and its history disagree"
        keys += repeats
    assert len(keys) == len(set(keys)), "an alarm shows twice"
    assert set(keys) == expected


def fast(settings: Settings, **extra: object) -> Settings:
    return settings.model_copy(update={"sim_resend_min_s": 0.3, "sim_resend_max_s": 1.0, **extra})


async def _crash_run(broker: Broker, tmp_path: Path, fault: str) -> None:
    s = fast(make_settings(tmp_path, broker.url, forward_backoff_max_s=0.5))
    ids = {f"pendant-{i}": DeviceType.PENDANT for i in range(8)}
    await prepare_stores(s, ids)
    await create_user(s, "op", "operator")
    devices = [SimDevice(device_id, DeviceType.PENDANT, s) for device_id in ids]
    pressed: set[Key] = set()
    async with running_receiver(s):
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            kill_at = f"{fault}:{len(devices) + 1}"  # the batch that stores the first alarm after wave 1
            gw = GatewayProcess(s.model_copy(update={"fault_kill_at": kill_at}), tmp_path / "gw.log")
            gw.start()
            try:
                await asyncio.gather(*(d.start() for d in devices))
                # wave 1, one alarm at a time, is stored while the gateway lives: exactly one batch each
                for d in devices:
                    alarm_id = await d.press()
                    await d.wait_for_status(alarm_id, AckStatus.STORED, 30)
                    pressed.add((d.device_id, alarm_id))
                # waves 2-5 are in flight when the gateway kills itself at its next batch
                for _ in range(4):
                    for d in devices:
                        pressed.add((d.device_id, await d.press()))
                assert await wait_exit(gw) == -9, "the gateway should have been SIGKILLed by fault injection"
                assert any(d.pending() for d in devices), "some alarms should be unconfirmed after the crash"
                gw = GatewayProcess(s, tmp_path / "gw.log")
                gw.start()
                for d in devices:
                    for alarm_id in [a for dev, a in pressed if dev == d.device_id]:
                        await d.wait_for_status(alarm_id, AckStatus.STORED, 60)
                    assert d.pending() == []
                await collect_until(feed, pressed)
                await assert_queue_exactly(api, pressed)
            finally:
                gw.stop()
                await asyncio.gather(*(d.stop() for d in devices))
        await api.close()


async def test_gateway_killed_after_commit_before_ack(broker: Broker, tmp_path: Path) -> None:
    await _crash_run(broker, tmp_path, "after_commit")


async def test_gateway_killed_before_commit(broker: Broker, tmp_path: Path) -> None:
    await _crash_run(broker, tmp_path, "before_commit")


async def test_gateway_killed_at_a_random_moment_under_load(broker: Broker, tmp_path: Path) -> None:
    s = fast(make_settings(tmp_path, broker.url, forward_backoff_max_s=0.5))
    ids = {f"fall-{i}": DeviceType.FALL_SENSOR for i in range(10)}
    await prepare_stores(s, ids)
    await create_user(s, "op", "operator")
    devices = [SimDevice(device_id, DeviceType.FALL_SENSOR, s) for device_id in ids]
    pressed: set[Key] = set()
    async with running_receiver(s):
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            gw = GatewayProcess(s, tmp_path / "gw.log")
            gw.start()
            try:
                await asyncio.gather(*(d.start() for d in devices))

                midway = asyncio.Event()

                async def press_many(d: SimDevice) -> None:
                    for _ in range(10):
                        pressed.add((d.device_id, await d.press()))
                        if len(pressed) >= 40:
                            midway.set()
                        await asyncio.sleep(0.01)  # pacing the button presses, not synchronisation

                pressing = asyncio.gather(*(press_many(d) for d in devices))
                # kill while alarms are being pressed: some stored, some in the writer, some at the broker
                await asyncio.wait_for(midway.wait(), 30)
                gw.kill()
                await pressing
                gw.start()
                for d in devices:
                    for alarm_id in [a for dev, a in pressed if dev == d.device_id]:
                        await d.wait_for_status(alarm_id, AckStatus.STORED, 60)
                await collect_until(feed, pressed)
                await assert_queue_exactly(api, pressed)
                assert len(pressed) == 100
            finally:
                gw.stop()
                await asyncio.gather(*(d.stop() for d in devices))
        await api.close()


async def test_alarm_published_while_gateway_down_waits_in_its_session(broker: Broker, tmp_path: Path) -> None:
    """A device that never resends still gets through: the broker holds it in the gateway's session."""
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    async with running_receiver(s):
        gw = GatewayProcess(s, tmp_path / "gw.log")
        gw.start()  # first connect creates the persistent session
        gw.kill()
        try:
            async with RawDevice(s, "p") as device:
                device.publish("alarm", {"alarm_id": "while-down", "type": "fall", "ts": datetime.now(UTC).isoformat()})
                gw.start()
                assert (await device.next_ack(alarm_id="while-down", timeout=30))["status"] == "stored"
        finally:
            gw.stop()


async def test_receiver_down_then_up_gets_everything_once(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, forward_backoff_max_s=0.3)
    await prepare_stores(s, {"p": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    pressed: set[Key] = set()
    async with RawDevice(s, "p") as device:
        # receiver down; the gateway stores and keeps the rows; then the gateway restarts, still no receiver
        for round_ in range(2):
            async with running_gateway(s) as gw:
                for i in range(10):
                    alarm_id = f"r{round_}-{i}"
                    device.publish(
                        "alarm",
                        {"alarm_id": alarm_id, "type": "assistance", "ts": datetime.now(UTC).isoformat()},
                    )
                    assert (await device.next_ack(alarm_id=alarm_id))["status"] == "stored"
                    pressed.add(("p", alarm_id))
                assert not gw.forwarder.receiver_reachable
        async with engine_scope(s.gateway_database_url) as engine, session_factory(engine)() as session:
            pending = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))
            )
        assert pending == 20
        async with running_gateway(s), running_receiver(s):
            api = Api(s)
            await api.login("op")
            async with LiveFeedReader(api) as feed:
                rows = await api.alarms(all_states="true")
                if sum(1 + r["repeats"] for r in rows) < len(pressed):  # repeats collapsed into the first item
                    await collect_until(feed, pressed)
            await assert_queue_exactly(api, pressed)
            await api.close()


async def test_device_restarted_with_unsent_alarm_sends_it(broker: Broker, tmp_path: Path) -> None:
    s = fast(make_settings(tmp_path, broker.url))
    await prepare_stores(s, {"p": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    device = SimDevice("p", DeviceType.PENDANT, s)
    await device.start()
    alarm_id = await device.press()  # nobody answers: no gateway yet
    assert device.pending() == [alarm_id]
    await device.stop()

    async with running_receiver(s), running_gateway(s):
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            restarted = SimDevice("p", DeviceType.PENDANT, s)
            await restarted.start()
            try:
                await restarted.wait_for_status(alarm_id, AckStatus.STORED, 30)
                assert restarted.pending() == []
                await collect_until(feed, {("p", alarm_id)})
            finally:
                await restarted.stop()
        await assert_queue_exactly(api, {("p", alarm_id)})
        await api.close()
