"""The simulated fleet against a real Mosquitto: config, battery, faults, scenario steps, the light-weight swarm."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from devices import DeviceType, Heartbeat
from firmware_sim.device import SimDevice
from firmware_sim.fleet import ScenarioStep, load_scenario, run_scenario
from firmware_sim.swarm import Swarm
from testing.broker import Broker
from testing.harness import make_settings
from testing.wait import eventually
from trygg import mqtt
from trygg.settings import Settings

pytestmark = pytest.mark.asyncio
ROOT = "trygg/v1"


class Watcher:
    """A bare client subscribed to device topics; collects (topic, payload) and wakes waiters."""

    def __init__(self, settings: Settings, *filters: str) -> None:
        self.settings = settings
        self.filters = filters
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = asyncio.Condition()
        self.client: Any = None

    async def __aenter__(self) -> Watcher:
        subscribed = asyncio.Event()

        async def on_message(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
            retained = bool(props.get("retain")) if isinstance(props, dict) else False
            async with self.cond:
                self.messages.append((topic, payload, retained))
                self.cond.notify_all()
            return 0

        self.client = mqtt.make_client("watcher", persistent=False, on_message=on_message)
        self.client.on_subscribe = lambda *a: subscribed.set()
        await mqtt.connect(self.client, mqtt.MqttEndpoint.from_url(self.settings.mqtt_url))
        for f in self.filters:
            subscribed.clear()
            self.client.subscribe(f, qos=1)
            await asyncio.wait_for(subscribed.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.disconnect()

    async def wait_for(self, pred: Any, timeout: float = 10) -> tuple[str, bytes, bool]:
        """The first message (topic, payload, retained) that ``pred`` accepts, waiting for it if need be."""
        return await eventually(lambda: next((m for m in self.messages if pred(*m)), None), timeout, changed=self.cond)

    def heartbeats(self, device_id: str) -> list[Heartbeat]:
        topic = f"{ROOT}/devices/{device_id}/heartbeat"
        return [Heartbeat.model_validate_json(p) for t, p, _ in self.messages if t == topic]


async def publish_retained(settings: Settings, topic: str, body: dict[str, Any]) -> None:
    client = mqtt.make_client("config-writer", persistent=False)
    await mqtt.connect(client, mqtt.MqttEndpoint.from_url(settings.mqtt_url))
    client.publish(topic, json.dumps(body).encode(), qos=1, retain=True)
    await client.disconnect()


async def test_device_applies_retained_config_and_reports_its_version(tmp_path: Path, broker: Broker) -> None:
    settings = make_settings(tmp_path, broker.url)
    await publish_retained(settings, f"{ROOT}/devices/cfg-1/config", {"version": 3, "heartbeat_interval_s": 120})
    async with Watcher(settings, f"{ROOT}/devices/cfg-1/heartbeat") as watcher:
        device = SimDevice("cfg-1", DeviceType.PENDANT, settings, heartbeat_interval_s=0.2)
        async with device:
            await device.wait_config(3, timeout_s=10)
            assert device.heartbeat_interval_s == 120.0
            await watcher.wait_for(lambda t, p, r: json.loads(p).get("config_version") == 3)
            sent = device.heartbeats_sent
            # a newer config re-schedules again, with a heartbeat at once reporting it
            await publish_retained(settings, f"{ROOT}/devices/cfg-1/config", {"version": 4, "heartbeat_interval_s": 60})
            await device.wait_config(4, timeout_s=10)
            await watcher.wait_for(lambda t, p, r: json.loads(p).get("config_version") == 4)
            assert device.heartbeat_interval_s == 60.0
            assert device.heartbeats_sent <= sent + 2  # the 0.2 s loop is gone: no stream of heartbeats


async def test_battery_drains_and_mains_stops_it(tmp_path: Path, broker: Broker) -> None:
    settings = make_settings(tmp_path, broker.url)
    pendant = SimDevice("bat-1", DeviceType.PENDANT, settings, battery_pct=80, battery_drain_pct_per_h=3600 * 50)
    base = SimDevice("bat-2", DeviceType.BASE_UNIT, settings, battery_pct=80, battery_drain_pct_per_h=3600 * 50)
    pendant._battery_at -= 0.2  # 0.2 s ago at 50 %/s: 10 % drained
    base._battery_at -= 0.2
    assert pendant.battery_pct <= 70
    assert base.battery_pct == 80  # on mains
    base.lose_mains()
    assert base.mains is False
    base._battery_at -= 0.2
    assert base.battery_pct <= 70
    base.restore_mains()
    level = base.battery_pct
    base._battery_at -= 0.2
    assert base.battery_pct == level


async def test_go_silent_with_drop_fires_the_retained_will_and_come_back_reconnects(
    tmp_path: Path, broker: Broker
) -> None:
    settings = make_settings(tmp_path, broker.url)
    status = f"{ROOT}/devices/will-1/status"
    async with Watcher(settings, status, f"{ROOT}/devices/will-1/heartbeat") as watcher:
        device = SimDevice("will-1", DeviceType.PENDANT, settings, heartbeat_interval_s=30)
        async with device:
            await watcher.wait_for(lambda t, p, r: t == status and p == b"online")
            await device.go_silent(drop_connection=True)
            await watcher.wait_for(lambda t, p, r: t == status and p == b"offline")
            assert not device.connected
            before = device.heartbeats_sent
            await device.come_back()
            await device.wait_connected(10)
            await device.wait_heartbeats(before + 1, timeout_s=10)
    # the will was retained: a new subscriber gets the last status
    async with Watcher(settings, status) as late:
        await late.wait_for(lambda t, p, r: p == b"offline")


async def test_go_silent_keeping_the_connection_stops_heartbeats(tmp_path: Path, broker: Broker) -> None:
    settings = make_settings(tmp_path, broker.url)
    device = SimDevice("quiet-1", DeviceType.PENDANT, settings, heartbeat_interval_s=0.05)
    async with device:
        await device.wait_heartbeats(3, timeout_s=10)
        await device.go_silent(drop_connection=False)
        count = device.heartbeats_sent
        assert device.connected
        await device.come_back()
        await device.wait_heartbeats(count + 1, timeout_s=10)


async def test_scenario_file_step_runs(tmp_path: Path, broker: Broker) -> None:
    settings = make_settings(tmp_path, broker.url)
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "steps:\n"
        "  - {at: 0, action: mains_lost, devices: [sc-base_unit-001]}\n"
        "  - {at: 0.1, action: drop, fraction: 0.5}\n"
    )
    steps = load_scenario(scenario)
    assert steps[0] == ScenarioStep(0, "mains_lost", devices=("sc-base_unit-001",))
    async with (
        Watcher(settings, f"{ROOT}/devices/+/status") as watcher,
        Swarm(settings, 4, "sc", mix=[DeviceType.BASE_UNIT], heartbeat_interval_s=60) as swarm,
    ):
        log: list[dict[str, Any]] = []
        await asyncio.wait_for(run_scenario(swarm.devices, steps, log_to=log), 10)
        assert swarm.devices["sc-base_unit-001"].mains is False
        dropped = log[1]["devices"]
        assert len(dropped) == 2
        for device_id in dropped:
            await watcher.wait_for(lambda t, p, r, d=device_id: t.endswith(f"/{d}/status") and p == b"offline")
    with pytest.raises(ValueError):
        ScenarioStep(0, "explode")  # type: ignore[arg-type]


async def test_lightweight_swarm_connects_and_heartbeats(tmp_path: Path, broker: Broker) -> None:
    settings = make_settings(tmp_path, broker.url)
    async with Watcher(settings, f"{ROOT}/devices/+/heartbeat") as watcher:
        swarm = Swarm(settings, 200, "sw", heartbeat_interval_s=60, concurrency=50)
        async with swarm:
            assert swarm.failed == []
            assert swarm.connected == 200
            await eventually(lambda: len({t for t, _, _ in watcher.messages}) >= 200, 20, changed=watcher.cond)
            hb = watcher.heartbeats("sw-pendant-001")[0]
            assert hb.firmware and hb.battery_pct is not None
            # a retained config reaches a swarm device and is reported back
            device = swarm.devices["sw-pendant-001"]
            await publish_retained(
                settings, f"{ROOT}/devices/sw-pendant-001/config", {"version": 2, "heartbeat_interval_s": 600}
            )
            await watcher.wait_for(
                lambda t, p, r: t.endswith("/sw-pendant-001/heartbeat") and json.loads(p).get("config_version") == 2
            )
            assert device.heartbeat_interval_s == 600
