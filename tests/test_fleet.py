"""Device supervision end to end: real Mosquitto, the gateway with its fleet feature, the receiver's queue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devices import AckStatus, DeviceType
from firmware_sim.device import SimDevice
from firmware_sim.runner import press_standalone
from gateway.fleet.feature import FleetFeature
from gateway.service import Gateway
from testing.broker import Broker
from testing.harness import (
    Api,
    LiveFeedReader,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from testing.wait import eventually
from trygg import mqtt
from trygg.settings import Settings

FAST: dict[str, Any] = {
    "heartbeat_interval_alarm_s": 1.0,
    "heartbeat_grace_s": 0.5,
    "supervision_period_s": 0.1,
    "online_settle_s": 0.0,
    "health_flush_s": 0.2,
    "area_outage_min_devices": 3,
    "area_outage_share": 0.3,
}


class Fleet:
    """One MQTT connection speaking for many devices: heartbeats on a beat, status messages on demand."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.alive: set[str] = set()
        self.config_version: dict[str, int] = {}
        self.configs: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.last_beat: dict[str, float] = {}
        self.client: Any = None
        self._task: asyncio.Task[None] | None = None

    def topic(self, device_id: str, kind: str) -> str:
        return f"{self.s.topic_root}/devices/{device_id}/{kind}"

    async def __aenter__(self) -> Fleet:
        async def on_message(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
            await self.configs.put((topic.split("/")[-2], json.loads(payload)))
            return 0

        self.client = mqtt.make_client(f"fleet-{id(self)}", persistent=False, on_message=on_message)
        await mqtt.connect(self.client, mqtt.MqttEndpoint.from_url(self.s.mqtt_url))
        self.client.subscribe(f"{self.s.topic_root}/devices/+/config", qos=1)
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        with suppress(Exception):
            await self.client.disconnect()

    def beat_now(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            body: dict[str, Any] = {
                "ts": datetime.now(UTC).isoformat(),
                "battery_pct": 15,
                "mains": False,
                "network": "3g",
                "firmware": "1.0",
            }
            if device_id in self.config_version:
                body["config_version"] = self.config_version[device_id]
            self.client.publish(self.topic(device_id, "heartbeat"), json.dumps(body).encode(), qos=0)
            self.last_beat[device_id] = time.monotonic()

    def status(self, device_id: str, text: str) -> None:
        self.client.publish(self.topic(device_id, "status"), text.encode(), qos=1, retain=True)

    async def _beat(self) -> None:
        while True:  # the devices' own rhythm (what real firmware does), not a synchronisation
            self.beat_now(sorted(self.alive))
            await asyncio.sleep(0.2)


@asynccontextmanager
async def system(
    tmp_path: Path, broker: Broker, devices: dict[str, DeviceType], **extra: Any
) -> AsyncIterator[tuple[Settings, Api, LiveFeedReader, Fleet]]:
    s = make_settings(tmp_path, broker.url, **(FAST | extra))
    await prepare_stores(s, devices)
    await create_user(s, "op", "operator")
    await create_user(s, "tech", "technician")
    async with running_receiver(s):
        api = Api(s)
        await api.login("op")
        async with LiveFeedReader(api) as feed, Fleet(s) as fleet:
            yield s, api, feed, fleet
        await api.close()


async def test_offline_within_deadline_then_online_resolves(broker: Broker, tmp_path: Path) -> None:
    async with system(tmp_path, broker, {"p1": DeviceType.PENDANT}) as (s, api, feed, fleet), running_gateway(s) as gw:
        fleet.alive.add("p1")
        await eventually(online(gw, "p1"), 10)
        fleet.alive.discard("p1")
        silent_from = fleet.last_beat["p1"]
        alarm = await feed.next_alarm(type="device_offline", device_id="p1", timeout=10)
        detected_after = time.monotonic() - silent_from
        assert alarm["state"] == "new" and alarm["priority"] == 4
        limit = s.heartbeat_interval_alarm_s + s.heartbeat_grace_s
        assert limit <= detected_after <= limit + 1.0, detected_after
        fleet.alive.add("p1")
        resolved = await feed.next_alarm(alarm_id=alarm["alarm_id"], state="resolved", timeout=10)
        assert resolved["outcome"] == "device back online"
        rows = await api.alarms(device_id="p1", all_states="true")
        assert sorted(r["type"] for r in rows) == ["device_offline", "device_online"]
        assert all(r["state"] == "resolved" for r in rows)


async def test_flapping_device_gives_one_alarm(broker: Broker, tmp_path: Path) -> None:
    async with (
        system(tmp_path, broker, {"flappy": DeviceType.PENDANT}, online_settle_s=2.0) as (s, api, feed, fleet),
        running_gateway(s),
    ):
        fleet.beat_now(["flappy"])
        for _ in range(6):
            fleet.status("flappy", "offline")  # connection drops (last will) ...
            fleet.beat_now(["flappy"])  # ... and it is back at once
        first = await feed.next_alarm(type="device_offline", device_id="flappy", timeout=10)
        fleet.alive.add("flappy")  # now it stays: after the settle time the one alarm resolves
        await feed.next_alarm(alarm_id=first["alarm_id"], state="resolved", timeout=10)
        offline = [r for r in await api.alarms(device_id="flappy", all_states="true") if r["type"] == "device_offline"]
        assert len(offline) == 1


async def test_thirty_percent_silent_together_is_one_area_incident(broker: Broker, tmp_path: Path) -> None:
    ids = {f"d{i:02d}": DeviceType.PENDANT for i in range(10)}
    async with system(tmp_path, broker, ids) as (s, api, feed, fleet), running_gateway(s) as gw:
        fleet.alive.update(ids)
        await eventually(online(gw, *ids), 10)
        silent = {"d00", "d01", "d02", "d03"}
        fleet.alive.difference_update(silent)
        area = await feed.next_alarm(type="area_outage", timeout=10)
        assert set(area["details"]["devices"]) == silent
        assert area["device_id"] == "area-all"
        fleet.alive.update(silent)
        await feed.next_alarm(alarm_id=area["alarm_id"], state="resolved", timeout=10)
        rows = await api.alarms(all_states="true", limit=1000)
        assert [r for r in rows if r["type"] == "device_offline"] == []  # grouped, not one each


async def test_gateway_restart_keeps_supervision_state(broker: Broker, tmp_path: Path) -> None:
    devices = {"steady": DeviceType.PENDANT, "quiet": DeviceType.PENDANT}
    async with system(tmp_path, broker, devices, area_outage_min_devices=5) as (s, api, feed, fleet):
        fleet.alive.update(devices)
        async with running_gateway(s) as gw:
            await eventually(online(gw, *devices), 10)
        fleet.alive.discard("quiet")  # goes silent while the gateway is down
        async with running_gateway(s):
            alarm = await feed.next_alarm(type="device_offline", timeout=10)
            assert alarm["device_id"] == "quiet"
            # two more deadlines: the steady device, beating all along, must still not be declared offline
            passed = time.monotonic() + 2 * (s.heartbeat_interval_alarm_s + s.heartbeat_grace_s)
            await eventually(lambda: time.monotonic() > passed, 10)
        rows = await api.alarms(all_states="true")
        assert [r["device_id"] for r in rows if r["type"] == "device_offline"] == ["quiet"]


async def test_config_change_is_applied_and_reported(broker: Broker, tmp_path: Path) -> None:
    async with (
        system(tmp_path, broker, {"p1": DeviceType.PENDANT}) as (s, api, _feed, fleet),
        running_gateway(s, http=True),
    ):
        tech = Api(s)
        await tech.login("tech")
        base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/devices"
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tech.token}"}) as http:
            r = await http.put(f"{base}/p1/config", json={"heartbeat_interval_s": 120})
            assert r.status_code == 200, r.text
            assert r.json()["version"] == 1 and r.json()["applied_at"] is None
            device_id, config = await asyncio.wait_for(fleet.configs.get(), 5)
            assert (device_id, config["version"], config["heartbeat_interval_s"]) == ("p1", 1, 120)
            fleet.config_version["p1"] = config["version"]  # the device applies it and says so
            fleet.beat_now(["p1"])

            async def applied() -> dict[str, Any] | None:
                detail: dict[str, Any] = (await http.get(f"{base}/p1")).json()
                return detail if detail["config"]["applied_at"] else None

            detail = await eventually(applied, 5)
            assert detail["health"]["config_version"] == 1 and detail["health"]["heartbeat_interval_s"] == 120
            assert {"low_battery", "mains_lost", "at_risk_network"} <= set(detail["health"]["flags"])
            flagged = await http.get(base, params={"flag": ["low_battery", "at_risk_network"]})
            assert [d["id"] for d in flagged.json()] == ["p1"]
            assert (await http.put(f"{base}/p1/config", json={"heartbeat_interval_s": 5})).status_code == 422
            op = await http.put(
                f"{base}/p1/config", json={"heartbeat_interval_s": 60}, headers={"Authorization": f"Bearer {api.token}"}
            )
            assert op.status_code == 403
        await tech.close()


async def test_installation_test_passes_and_fails(broker: Broker, tmp_path: Path) -> None:
    s0 = {"sim_resend_min_s": 0.5, "sim_resend_max_s": 1.0}
    async with (
        system(tmp_path, broker, {"p1": DeviceType.PENDANT, "p2": DeviceType.PENDANT}, **s0) as (s, api, feed, _fleet),
        running_gateway(s, http=True),
    ):
        tech = Api(s)
        await tech.login("tech")
        base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/devices"
        device = SimDevice("p1", DeviceType.PENDANT, s)
        await device.start()
        try:
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tech.token}"}) as http:
                r = await http.post(f"{base}/p1/install-test", json={"window_s": 30})
                assert r.status_code == 201, r.text
                test_id = r.json()["id"]
                alarm_id = await device.press()
                await device.wait_for_status(alarm_id, AckStatus.ACKNOWLEDGED, 10)  # the whole chain, and back
                seen = await feed.next_alarm(alarm_id=alarm_id, timeout=10)
                assert seen["is_test"] and seen["state"] == "resolved"
                assert all(a["alarm_id"] != alarm_id for a in await api.alarms())  # not before the patrol

                async def finished(device_id: str) -> dict[str, Any] | None:
                    tests = (await http.get(f"{base}/{device_id}/install-tests")).json()
                    return dict(tests[0]) if tests and tests[0]["state"] in ("passed", "failed") else None

                passed = await eventually(lambda: finished("p1"), 10)
                assert passed["id"] == test_id and passed["state"] == "passed" and passed["alarm_id"] == alarm_id
                assert passed["end_to_end_ms"] is not None and passed["end_to_end_ms"] < 5000
                # a device that never presses within the window fails, saying where it stopped
                r = await http.post(f"{base}/p2/install-test", json={"window_s": 1})
                failed = await eventually(lambda: finished("p2"), 10)
                assert failed["state"] == "failed" and "no alarm from the device" in failed["detail"]
                assert failed["detail_code"] == "test.no_alarm" and passed["detail_code"] == "test.passed"
                # the next real alarm of p1 is not a test any more
                real = await device.press()
                await device.wait_for_status(real, AckStatus.STORED, 10)
                assert (await feed.next_alarm(alarm_id=real, timeout=10))["is_test"] is False
        finally:
            await device.stop()
        await tech.close()


async def test_one_shot_press_leaves_no_offline_alarm(broker: Broker, tmp_path: Path) -> None:
    """``trygg sim press`` of a device that no running fleet has: the press is stored and no device_offline
    follows its disconnect (it says nothing of the device's status and disconnects cleanly)."""
    devices = {"oneshot": DeviceType.PENDANT, "witness": DeviceType.PENDANT}
    async with system(tmp_path, broker, devices) as (s, api, feed, fleet), running_gateway(s) as gw:
        fleet.alive.add("witness")
        await eventually(online(gw, "witness"), 10)
        for repeats in range(2):  # twice: the bug raised one offline alarm per press
            result = await press_standalone(s, "oneshot", DeviceType.PENDANT, None, timeout_s=10)
            assert result.stored, result
            # the second press is collapsed into the first's open item (issue 8): the item shows it
            await feed.next_alarm(device_id="oneshot", repeats=repeats, timeout=10)
        # The witness's connection drops after the presses. Its offline alarm takes the same path (status topic,
        # supervision tick, durable intake) as one of the one-shot device would have, which came first.
        fleet.alive.discard("witness")
        fleet.status("witness", "offline")
        await feed.next_alarm(type="device_offline", device_id="witness", timeout=10)
        rows = await api.alarms(device_id="oneshot", all_states="true")
        assert [(r["type"], r["repeats"]) for r in rows] == [("assistance", 1)], rows  # both presses, no offline
        assert online(gw, "oneshot")() is False  # never supervised through a one-shot connection


async def test_battery_only_devices_are_not_mains_lost(broker: Broker, tmp_path: Path) -> None:
    """A pendant (battery-only) says has_mains: false; a base unit on mains that loses it is flagged."""
    devices = {"pendant": DeviceType.PENDANT, "base": DeviceType.BASE_UNIT}
    async with (
        system(tmp_path, broker, devices) as (s, _api, _feed, _fleet),
        running_gateway(s, http=True) as gw,
    ):
        tech = Api(s)
        await tech.login("tech")
        pendant = SimDevice("pendant", DeviceType.PENDANT, s, heartbeat_interval_s=0.2)
        base = SimDevice("base", DeviceType.BASE_UNIT, s, heartbeat_interval_s=0.2)
        await pendant.start()
        await base.start()
        try:
            both_online = online(gw, "pendant", "base")

            async def heard() -> bool:
                return both_online()

            await eventually(heard, timeout=10)
            base.lose_mains()
            url = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/devices"
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tech.token}"}) as http:

                async def flagged() -> list[str]:
                    while True:
                        rows = (await http.get(url, params={"flag": "mains_lost"})).json()
                        if rows:
                            return [d["id"] for d in rows]
                        await asyncio.sleep(0.05)

                assert await asyncio.wait_for(flagged(), 10) == ["base"]
                health = (await http.get(f"{url}/pendant")).json()["health"]
                assert health["has_mains"] is False and health["mains"] is None
                assert "mains_lost" not in health["flags"]
                base_health = (await http.get(f"{url}/base")).json()["health"]
                assert base_health["has_mains"] is True and base_health["mains"] is False
        finally:
            await pendant.stop()
            await base.stop()
        await tech.close()


def online(gw: Gateway, *device_ids: str) -> Callable[[], bool]:
    fleet = next(f for f in gw.features if isinstance(f, FleetFeature))

    def check() -> bool:
        states = fleet.supervisor.states if fleet.supervisor else {}
        return all(d in states and states[d].status == "online" for d in device_ids)

    return check
