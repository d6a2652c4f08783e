"""Two gateways on one PostgreSQL database and one Mosquitto, sharing the device topics (MQTT 5 shared
subscriptions): one leader judges deadlines, heartbeats heard by either count, a takeover raises no false offline
alarm, an alarm resent through both is stored once, and a cancel never overtakes its alarm."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from devices import DeviceType
from gateway.fleet.feature import FleetFeature
from gateway.models import StoredAlarm
from gateway.service import Gateway
from testing.broker import Broker, free_port
from testing.harness import RawDevice, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from trygg import mqtt
from trygg.settings import Settings

HA: dict[str, Any] = {
    "heartbeat_interval_alarm_s": 1.0,
    "heartbeat_grace_s": 1.0,
    "supervision_period_s": 0.1,
    "online_settle_s": 0.0,
    "health_flush_s": 0.2,
    "area_outage_min_devices": 50,  # these tests look at single devices
    "mqtt_shared_group": "trygg",
    "leader_check_s": 0.2,
    "leader_ttl_s": 2.0,
    "leader_takeover_grace_s": 3.0,
    "heartbeat_share_flush_s": 0.2,
}
DEVICES = [f"p{n}" for n in range(8)]


def instance(s: Settings, name: str) -> Settings:
    return s.model_copy(update={"instance_name": name, "gateway_http_port": free_port()})


@asynccontextmanager
async def two_gateways(tmp_path: Path, broker: Broker, pg_url: str) -> AsyncIterator[tuple[Settings, list[Gateway]]]:
    s = make_settings(tmp_path, broker.url, gateway_database_url=pg_url, **HA)
    await prepare_stores(s, {d: DeviceType.PENDANT for d in DEVICES})
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running_receiver(s))
        gws = [await stack.enter_async_context(running_gateway(instance(s, f"gw{n}"))) for n in (1, 2)]
        yield s, gws


def leader_of(gws: list[Gateway]) -> Gateway | None:
    leaders = [gw for gw in gws if gw.port.leadership.is_leader]
    assert len(leaders) <= 1, "two leaders"
    return leaders[0] if leaders else None


async def offline_alarms(gw: Gateway) -> list[str]:
    async with gw.sessions() as session:
        rows = await session.scalars(select(StoredAlarm.device_id).where(StoredAlarm.type == "device_offline"))
        return list(rows)


class Beats:
    """Heartbeats for the devices in ``alive``, every 0.2 s (the devices' own rhythm, not a synchronisation)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.alive = set(DEVICES)
        self.client: Any = None
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Beats:
        self.client = mqtt.make_client("beats", persistent=False)
        await mqtt.connect(self.client, mqtt.MqttEndpoint.from_url(self.s.mqtt_url))
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.disconnect()

    async def _run(self) -> None:
        while True:
            for device_id in sorted(self.alive):
                body = json.dumps({"ts": datetime.now(UTC).isoformat(), "battery_pct": 80}).encode()
                self.client.publish(f"{self.s.topic_root}/devices/{device_id}/heartbeat", body, qos=0)
            await asyncio.sleep(0.2)


async def test_heartbeats_through_either_gateway_count_and_takeover_raises_no_false_alarm(
    broker: Broker, tmp_path: Path, pg_fresh_url: str
) -> None:
    async with two_gateways(tmp_path, broker, pg_fresh_url) as (s, gws), Beats(s) as beats:
        first = await eventually(lambda: leader_of(gws), timeout=30)
        assert first is not None
        other = next(gw for gw in gws if gw is not first)
        fleet = first.feature(FleetFeature)
        await eventually(lambda: all(fleet.is_online(d) for d in DEVICES), timeout=30)
        # The follower heard its share of the heartbeats and wrote them; the leader read them.
        shared = other.feature(FleetFeature).share
        await eventually(lambda: shared.written > 5 * len(DEVICES) and fleet.share.read > 5 * len(DEVICES), 30)
        # The leader's session dies (as when its process is killed): the other takes over.
        async with first.sessions() as session:
            await session.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
                {"n": "trygg.gateway.leader:gw1" if first is gws[0] else "trygg.gateway.leader:gw2"},
            )
        t0 = time.monotonic()
        await eventually(lambda: leader_of(gws) is other, timeout=30)
        new_fleet = other.feature(FleetFeature)
        await eventually(lambda: new_fleet.share.read > 0 and new_fleet.supervisor.states, timeout=30)
        print(f"takeover in {time.monotonic() - t0:.2f} s")
        # Well past a deadline (2 s) and the takeover grace (3 s) with heartbeats going on: nobody went offline.
        reads = new_fleet.share.read
        await eventually(lambda: new_fleet.share.read > reads + 20 * len(DEVICES), timeout=60)
        assert all(new_fleet.is_online(d) for d in DEVICES)
        assert await offline_alarms(other) == []
        # One device falls silent: the new leader raises exactly one alarm for it.
        beats.alive.discard("p3")
        await eventually(lambda: new_fleet.is_online("p3") is False, timeout=30)

        async def raised() -> list[str]:
            return await offline_alarms(other)

        await eventually(raised, timeout=30)
        assert await offline_alarms(other) == ["p3"]
        assert not first.feature(FleetFeature).leading


async def test_alarm_resent_through_two_gateways_is_stored_once_and_cancel_never_overtakes(
    broker: Broker, tmp_path: Path, pg_fresh_url: str
) -> None:
    async with two_gateways(tmp_path, broker, pg_fresh_url) as (s, gws), RawDevice(s, "p1") as dev:
        ts = datetime.now(UTC).isoformat()
        # A cancel before its alarm was stored (a device that did not wait for "stored"): no answer at all.
        dev.publish("alarm/cancel", {"alarm_id": "a1", "ts": ts})
        # The alarm, resent ten times: the broker hands the copies to either gateway.
        for _ in range(10):
            dev.publish("alarm", {"alarm_id": "a1", "type": "fall", "ts": ts})
        acks = [await asyncio.wait_for(dev.acks.get(), 30) for _ in range(10)]
        # The device resends its cancel (it keeps it until "cancelled"): now it finds the alarm.
        dev.publish("alarm/cancel", {"alarm_id": "a1", "ts": ts})

        def statuses() -> list[str]:
            return [str(a.get("status")) for a in acks]

        while statuses().count("stored") < 10 or "cancelled" not in statuses():
            acks.append(await asyncio.wait_for(dev.acks.get(), 30))
        # Ten `stored`, and the cancel answered `cancelled`: the early cancel was either not answered (it reached a
        # gateway before any stored the alarm) or, when another gateway had stored the alarm meanwhile, found it and
        # was answered `cancelled` too; never `unknown_alarm`, which would tell the device to drop its cancel.
        assert statuses().count("stored") == 10 and set(statuses()) == {"stored", "cancelled"}, acks
        async with gws[0].sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(StoredAlarm).where(StoredAlarm.alarm_id == "a1")
            )
            row = await session.get(StoredAlarm, ("p1", "a1"))
        assert count == 1 and row is not None and row.cancelled_at is not None
