"""The alarm path end to end: device -> broker -> gateway -> receiver -> operator -> device."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devices import DeviceType
from gateway.models import Device
from testing.broker import Broker
from testing.harness import (
    Api,
    LiveFeedReader,
    RawDevice,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from testing.wait import eventually
from trygg import audit
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings


def alarm(alarm_id: str, type_: str = "assistance", **extra: Any) -> dict[str, Any]:
    return {"alarm_id": alarm_id, "type": type_, "ts": datetime.now(UTC).isoformat(), **extra}


async def test_press_reaches_queue_and_device_hears_acknowledged(broker: Broker, tmp_path: Path) -> None:
    await _happy_path(make_settings(tmp_path, broker.url))


async def test_alarm_path_on_postgresql(broker: Broker, tmp_path: Path, pg_fresh_url: str) -> None:
    await _happy_path(
        make_settings(tmp_path, broker.url, gateway_database_url=pg_fresh_url, receiver_database_url=pg_fresh_url)
    )


async def _happy_path(s: Settings) -> None:
    await prepare_stores(s, {"pendant-1": DeviceType.PENDANT})
    async with engine_scope(s.gateway_database_url) as engine, session_factory(engine).begin() as session:
        device = await session.get(Device, "pendant-1")
        assert device is not None
        device.client_ref = "client-7"
    await create_user(s, "op", "operator")
    await create_user(s, "car1", "patrol")
    async with running_receiver(s), running_gateway(s), RawDevice(s, "pendant-1") as device:
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            device.publish("alarm", alarm("a1", "fall", battery_pct=80, text="pressed in kitchen"))
            assert (await device.next_ack(alarm_id="a1"))["status"] == "stored"
            seen = await feed.next_alarm(alarm_id="a1")
            assert seen["state"] == "new" and seen["device_id"] == "pendant-1"
            assert seen["priority"] == 8  # the fall default
            assert seen["details"]["battery_pct"] == 80

            r = await api.act(seen["id"], "acknowledge", {"note": "calling the client"})
            assert r.status_code == 200, r.text
            ack = await device.next_ack(alarm_id="a1", status="acknowledged")
            assert ack["status"] == "acknowledged"

            r = await api.act(seen["id"], "assign", {"patrol": "car1"})
            assert r.status_code == 200, r.text
            r = await api.act(seen["id"], "on-site")
            assert r.status_code == 200, r.text
            r = await api.act(seen["id"], "resolve", {"outcome": "helped up, no injury"})
            assert r.status_code == 200, r.text
            detail = r.json()
            assert detail["state"] == "resolved"
            actions = [(e["action"], e["actor"]) for e in detail["events"]]
            assert actions == [
                ("received", "gateway"),
                ("acknowledge", "op"),
                ("assign", "op"),
                ("on_site", "op"),
                ("resolve", "op"),
            ]
            assert detail["events"][1]["note"] == "calling the client"
        await api.close()
    # every step is also in the receiver's hash-chained supervision log, and the chain verifies
    async with engine_scope(s.receiver_database_url) as engine, session_factory(engine)() as session:
        result = await audit.verify(session)
        entries = await audit.client_entries(session, "client-7")
    assert result.ok and result.entries >= 5
    assert [e.action for e in entries] == [
        "alarm.received",
        "alarm.acknowledge",
        "alarm.assign",
        "alarm.on_site",
        "alarm.resolve",
    ]


async def test_duplicates_are_stored_once_and_answered_each_time(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"pendant-2": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s), RawDevice(s, "pendant-2") as device:
        payload = alarm("dup-1")
        for _ in range(5):
            device.publish("alarm", payload)
        for _ in range(5):
            assert (await device.next_ack(alarm_id="dup-1"))["status"] == "stored"
        api = Api(s)
        await api.login("op")
        # a later, different alarm passes through behind the duplicates: once it is visible, so is the first (of
        # another type: one of the same type while the first is open would be collapsed into it)
        device.publish("alarm", alarm("after-dups", "fall"))
        await device.next_ack(alarm_id="after-dups")
        async with LiveFeedReader(api) as feed:
            rows = await api.alarms(device_id="pendant-2")
            if not any(r["alarm_id"] == "after-dups" for r in rows):
                await feed.next_alarm(alarm_id="after-dups")
                rows = await api.alarms(device_id="pendant-2")
        assert sorted(r["alarm_id"] for r in rows) == ["after-dups", "dup-1"]
        await api.close()


async def test_queue_order_is_priority_then_age(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    devices = {"d1": DeviceType.PENDANT, "d2": DeviceType.SMOKE, "d3": DeviceType.FALL_SENSOR, "d4": DeviceType.PENDANT}
    await prepare_stores(s, devices)
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s):
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            for device_id, alarm_id, type_ in [
                ("d1", "low", "low_battery"),
                ("d1", "assist-old", "assistance"),
                ("d2", "smoke", "smoke"),
                ("d3", "fall", "fall"),
                ("d4", "assist-new", "assistance"),  # d1's would be collapsed into its open assist-old
            ]:
                async with RawDevice(s, device_id) as dev:
                    dev.publish("alarm", alarm(alarm_id, type_))
                    await dev.next_ack(alarm_id=alarm_id)
                await feed.next_alarm(alarm_id=alarm_id)
        order = [r["alarm_id"] for r in await api.alarms()]
        assert order == ["smoke", "fall", "assist-old", "assist-new", "low"]
        await api.close()


async def test_device_cancel_cancels_open_alarm(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p") as device:
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            device.publish("alarm", alarm("oops"))
            await device.next_ack(alarm_id="oops", status="stored")
            await feed.next_alarm(alarm_id="oops", state="new")
            device.publish("alarm/cancel", {"alarm_id": "oops", "ts": datetime.now(UTC).isoformat()})
            assert (await device.next_ack(alarm_id="oops", status="cancelled"))["status"] == "cancelled"
            cancelled = await feed.next_alarm(alarm_id="oops", state="cancelled")
        r = await api.http.get(f"/api/v1/alarms/{cancelled['id']}")
        assert [e["action"] for e in r.json()["events"]] == ["received", "cancel"]
        await api.close()


async def test_escalation_levels_are_pushed_live(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, escalate_first_s=0.5, escalate_second_s=1.0)
    await prepare_stores(s, {"p": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p") as device:
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            device.publish("alarm", alarm("slow"))
            await feed.next_alarm(alarm_id="slow", escalation_level=0)
            first = await feed.next_alarm(alarm_id="slow", escalation_level=1)
            second = await feed.next_alarm(alarm_id="slow", escalation_level=2)
        assert first["state"] == second["state"] == "new"
        r = await api.http.get(f"/api/v1/alarms/{second['id']}")
        assert [e["action"] for e in r.json()["events"]] == ["received", "escalated", "escalated"]
        await api.close()


async def test_a_press_again_shows_on_the_open_item_and_each_press_hears_help_coming(
    broker: Broker, tmp_path: Path
) -> None:
    """Issue 8: a second press of the same type while the first is open is collapsed into its queue item, and never
    hidden: the live feed shows the item's update (count, latest time), the history names the press, a call or a
    cancel naming it finds the item, and acknowledging tells the device for both presses."""
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"pendant-3": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s), RawDevice(s, "pendant-3") as device:
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed:
            device.publish("alarm", alarm("p1"))
            first = await feed.next_alarm(alarm_id="p1")
            assert first["repeats"] == 0 and first["last_repeat_at"] is None
            device.publish("alarm", alarm("p2", priority=9))
            assert (await device.next_ack(alarm_id="p2"))["status"] == "stored"
            again = await feed.next_alarm(id=first["id"], repeats=1)
            assert again["alarm_id"] == "p1" and again["state"] == "new" and again["last_repeat_at"] is not None
            assert again["priority"] == 9  # raised to the repeat's
            detail = (await api.http.get(f"/api/v1/alarms/{first['id']}")).json()
            assert [(e["code"], e["params"]) for e in detail["events"]] == [
                ("alarm.received", {}),
                ("alarm.repeated", {"alarm_id": "p2"}),
            ]
            # the device cancels its first press: the second still stands, so the item stays (and says so)
            device.publish("alarm/cancel", {"alarm_id": "p1", "ts": datetime.now(UTC).isoformat()})
            assert (await device.next_ack(alarm_id="p1", status="cancelled"))["status"] == "cancelled"

            async def cancel_line() -> dict[str, Any] | None:
                item = (await api.http.get(f"/api/v1/alarms/{first['id']}")).json()
                return item if item["events"][-1]["code"] == "alarm.cancelled_one_by_device" else None

            item: dict[str, Any] = await eventually(cancel_line, timeout=15)  # type: ignore[arg-type]
            assert item["state"] == "new" and item["events"][-1]["params"] == {"alarm_id": "p1", "standing": 1}
            r = await api.act(first["id"], "acknowledge")
            assert r.status_code == 200, r.text
            assert (await device.next_ack(alarm_id="p2", status="acknowledged"))["status"] == "acknowledged"
        await api.close()
