"""Two independent Mosquittos, two gateways subscribed to both (``mqtt_second_url``), one PostgreSQL database: an
alarm is stored once whichever broker it came by, its answer goes back on that broker, an alarm and its cancel
cannot overtake each other across the brokers, a device whose broker dies fails over to the second one without
a false offline alarm, a gateway starts with one broker down and sends what is not an answer to both, and the
receiver's notices to devices go out on both brokers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from devices import AckStatus, DeviceType
from firmware_sim.device import SimDevice
from gateway import metrics
from gateway.models import StoredAlarm
from gateway.service import Gateway
from testing.broker import Broker, free_port
from testing.harness import (
    Api,
    RawDevice,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from testing.wait import eventually
from trygg.settings import Settings

HA: dict[str, Any] = {
    "heartbeat_interval_alarm_s": 2.0,
    "heartbeat_grace_s": 4.0,
    "supervision_period_s": 0.1,
    "online_settle_s": 0.0,
    "health_flush_s": 0.2,
    "area_outage_min_devices": 50,
    "mqtt_shared_group": "trygg",
    "leader_check_s": 0.2,
    "leader_ttl_s": 2.0,
    "leader_takeover_grace_s": 3.0,
    "heartbeat_share_flush_s": 0.2,
    "sim_resend_min_s": 0.3,
    "sim_resend_max_s": 1.0,
    "sim_fallback_after_s": 1.0,
}
DEVICES = {"p1": DeviceType.PENDANT, "p2": DeviceType.PENDANT}


@pytest.fixture
def second_broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(workdir=tmp_path / "mosquitto-2")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@asynccontextmanager
async def two_gateways(
    tmp_path: Path, first: Broker, second: Broker, pg_url: str
) -> AsyncIterator[tuple[Settings, list[Gateway]]]:
    s = make_settings(tmp_path, first.url, mqtt_second_url=second.url, gateway_database_url=pg_url, **HA).model_copy(
        update={"sim_fallback_mqtt_url": second.url}
    )
    await prepare_stores(s, DEVICES)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running_receiver(s))
        gws = []
        for name in ("gw1", "gw2"):
            each = s.model_copy(update={"instance_name": name, "gateway_http_port": free_port()})
            gws.append(await stack.enter_async_context(running_gateway(each)))
        yield s, gws


async def stored_rows(gw: Gateway, alarm_id: str) -> list[StoredAlarm]:
    async with gw.sessions() as session:
        return list(await session.scalars(select(StoredAlarm).where(StoredAlarm.alarm_id == alarm_id)))


async def offline_alarms(gw: Gateway) -> int:
    async with gw.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(StoredAlarm).where(StoredAlarm.type == "device_offline")
        )
        return int(count or 0)


async def test_alarm_by_either_broker_is_stored_once_answered_there_and_its_cancel_never_overtakes(
    broker: Broker, second_broker: Broker, tmp_path: Path, pg_fresh_url: str
) -> None:
    async with two_gateways(tmp_path, broker, second_broker, pg_fresh_url) as (s, gws):
        on_b = s.model_copy(update={"mqtt_url": second_broker.url})
        async with RawDevice(s, "p1") as dev_a, RawDevice(on_b, "p1") as dev_b:
            ts = datetime.now(UTC).isoformat()
            # a1 by the second broker: answered there only.
            dev_b.publish("alarm", {"alarm_id": "a1", "type": "fall", "ts": ts})
            assert (await dev_b.next_ack(timeout=30))["alarm_id"] == "a1"
            # a2 by the first broker: answered there; a1's answer never came this way (it was sent before a2).
            dev_a.publish("alarm", {"alarm_id": "a2", "type": "fall", "ts": ts})
            ack = await dev_a.next_ack(timeout=30)
            assert (ack["alarm_id"], ack["status"]) == ("a2", "stored")
            # The device failed over back to the first broker and resends a1 there, then cancels it there.
            dev_a.publish("alarm", {"alarm_id": "a1", "type": "fall", "ts": ts})
            assert (await dev_a.next_ack(timeout=30, alarm_id="a1"))["status"] == "stored"
            dev_a.publish("alarm/cancel", {"alarm_id": "a1", "ts": ts})
            assert (await dev_a.next_ack(timeout=30, alarm_id="a1"))["status"] == "cancelled"
            # A stale copy of a1 still held by the second broker's session arrives after its cancel: it is a
            # duplicate (answered stored), it neither re-opens the alarm nor makes a second one.
            dev_b.publish("alarm", {"alarm_id": "a1", "type": "fall", "ts": ts})
            assert (await dev_b.next_ack(timeout=30, alarm_id="a1"))["status"] == "stored"
            assert dev_a.acks.empty() and dev_b.acks.empty()
        rows = await stored_rows(gws[0], "a1")
        assert len(rows) == 1 and rows[0].cancelled_at is not None
        assert all(gw.core.brokers_connected == [True, True] for gw in gws)


async def test_device_fails_over_to_the_second_broker_and_back_without_a_false_offline_alarm(
    broker: Broker, second_broker: Broker, tmp_path: Path, pg_fresh_url: str
) -> None:
    async with two_gateways(tmp_path, broker, second_broker, pg_fresh_url) as (s, gws):
        device = SimDevice("p2", DeviceType.PENDANT, s, heartbeat_interval_s=0.5)
        await device.start()
        try:
            first = await device.press()
            await device.wait_for_status(first, AckStatus.STORED, timeout=30)
            # The first broker dies (sessions in memory: gone with it).
            assert broker.proc is not None
            broker.proc.kill()
            broker.proc.wait(10)
            second = await device.press()
            await device.wait_for_status(second, AckStatus.STORED, timeout=60)
            assert device.url == second_broker.url
            await device.cancel(second)
            await device.wait_for_status(second, AckStatus.CANCELLED, timeout=30)
            # The first broker comes back; the gateways reconnect to it, the device goes home after a quiet while
            # and says "offline" where it leaves: with two brokers that is left to the heartbeat deadline.
            statuses = metrics.message_counter("status")._value.get()
            broker.start()
            await eventually(lambda: all(gw.core.brokers_connected == [True, True] for gw in gws), timeout=60)
            await eventually(lambda: device.url == broker.url and device.connected, timeout=60)
            await eventually(lambda: metrics.message_counter("status")._value.get() > statuses, timeout=30)
            third = await device.press()
            await device.wait_for_status(third, AckStatus.STORED, timeout=30)
            # Well past the deadline (6 s) with heartbeats going on (every 0.5 s): no offline alarm.
            beats = device.heartbeats_sent
            await eventually(lambda: device.heartbeats_sent > beats + 16, timeout=60)
        finally:
            await device.stop()
        assert await offline_alarms(gws[0]) == 0
        for alarm_id in (first, second, third):
            assert len(await stored_rows(gws[0], alarm_id)) == 1


async def test_gateway_starts_with_one_broker_down_and_publishes_what_is_not_an_answer_to_both(
    broker: Broker, tmp_path: Path
) -> None:
    second = Broker(workdir=tmp_path / "mosquitto-2")  # not started yet: the gateway must start without it
    s = make_settings(tmp_path, broker.url, mqtt_second_url=second.url)
    await prepare_stores(s, DEVICES)
    try:
        async with running_receiver(s), running_gateway(s) as gw:
            assert gw.core.brokers_connected == [True, False]
            second.start()
            await eventually(lambda: gw.core.brokers_connected == [True, True], timeout=60)
            # Retained state (a device's configuration) outside any message's handling: on both brokers.
            topic = f"{s.topic_root}/devices/p1/config"
            assert gw.port.publish(topic, b'{"version": 7}', retain=True)
            for url in (broker.url, second.url):
                on = s.model_copy(update={"mqtt_url": url})
                async with RawDevice(on, "p1") as reader:
                    reader.client.subscribe(topic, qos=1)
                    got = await reader.next_ack(timeout=30)  # RawDevice queues whatever it receives
                    assert got == {"version": 7}, url
    finally:
        second.stop()


async def test_a_device_on_the_second_broker_only_gets_its_notice_and_a_dead_broker_holds_none_up(
    broker: Broker, second_broker: Broker, tmp_path: Path, pg_fresh_url: str
) -> None:
    """The receiver does not know which broker a device is on: a notice (``acknowledged``: help is coming) goes out
    on both, and is marked sent once each broker it went to confirmed it. A device on the second broker alone gets
    it; then, with the first broker dead, a second notice still reaches it."""
    async with two_gateways(tmp_path, broker, second_broker, pg_fresh_url) as (s, _gws):
        await create_user(s, "op", "operator")
        on_b = s.model_copy(update={"mqtt_url": second_broker.url})
        api = Api(s)
        await api.login("op")
        try:
            # two devices (one device's alarms close together are one queue item, acknowledged together)
            async with RawDevice(on_b, "p1") as dev_b, RawDevice(on_b, "p2") as dev_b2:
                ts = datetime.now(UTC).isoformat()
                for dev, alarm_id in ((dev_b, "n1"), (dev_b2, "n2")):
                    dev.publish("alarm", {"alarm_id": alarm_id, "type": "fall", "ts": ts})
                    assert (await dev.next_ack(timeout=30, alarm_id=alarm_id))["status"] == "stored"

                async def queued(alarm_id: str) -> int | None:
                    return next((int(a["id"]) for a in await api.alarms() if a["alarm_id"] == alarm_id), None)

                first = await eventually(lambda: queued("n1"), timeout=30)
                second = await eventually(lambda: queued("n2"), timeout=30)
                assert (await api.act(first, "acknowledge")).status_code == 200
                ack = await dev_b.next_ack(timeout=30, alarm_id="n1", status="acknowledged")
                assert ack["status"] == "acknowledged"
                # the first broker dies: the notice goes out on the second alone, and is not held up
                assert broker.proc is not None
                broker.proc.kill()
                broker.proc.wait(10)
                assert (await api.act(second, "acknowledge")).status_code == 200
                ack = await dev_b2.next_ack(timeout=30, alarm_id="n2", status="acknowledged")
                assert ack["status"] == "acknowledged"
        finally:
            await api.close()
