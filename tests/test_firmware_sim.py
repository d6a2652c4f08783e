"""Simulated devices against a real Mosquitto, with a small test-side gateway written with gmqtt."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import gmqtt
import pytest
from gmqtt.mqtt.constants import MQTTv50

from devices import (
    AckStatus,
    AlarmAck,
    AlarmMessage,
    AlarmType,
    DeviceType,
    Heartbeat,
    Topics,
    parse_alarm,
    parse_cancel,
)
from firmware_sim import EntryKind, Fleet, Outbox, OutboxEntry, SimDevice, device_ids
from firmware_sim.control import press_via_control
from firmware_sim.runner import guess_device_type, press_standalone
from testing.broker import Broker
from testing.wait import eventually
from trygg.mqtt import MqttEndpoint
from trygg.settings import Settings

ROOT = "trygg/v1"
TOPICS = Topics(ROOT)

# (kind "alarm" | "cancel", alarm_id, delivery number from 1) -> status(es) to answer, or None (stay silent)
Policy = Callable[[str, str, int], "str | list[str] | None"]


def always_stored(kind: str, alarm_id: str, n: int) -> str:
    return "stored" if kind == "alarm" else "cancelled"


class Gateway:
    """Subscribes to every device's alarm, cancel and heartbeat topics and answers acks by ``policy``."""

    def __init__(self, url: str, policy: Policy = always_stored) -> None:
        self.endpoint = MqttEndpoint.from_url(url)
        self.policy = policy
        self.alarms: dict[str, list[dict[str, Any]]] = {}
        self.cancels: dict[str, list[dict[str, Any]]] = {}
        self.heartbeats: dict[str, list[Heartbeat]] = {}
        self.statuses: dict[str, bytes] = {}
        self.devices_of: dict[str, str] = {}
        self._changed = asyncio.Condition()
        self.client: Any = None

    async def start(self) -> None:
        self.client = gmqtt.Client(f"test-gw-{secrets.token_hex(4)}", optimistic_acknowledgement=False)
        self.client.on_message = self._on_message
        subacked = asyncio.Event()
        self.client.on_subscribe = lambda *_: subacked.set()
        await self.client.connect(self.endpoint.host, self.endpoint.port, version=MQTTv50)
        self.client.subscribe(
            [
                gmqtt.Subscription(f"{ROOT}/devices/+/alarm", qos=1),
                gmqtt.Subscription(f"{ROOT}/devices/+/alarm/cancel", qos=1),
                gmqtt.Subscription(f"{ROOT}/devices/+/heartbeat", qos=0),
                gmqtt.Subscription(f"{ROOT}/devices/+/status", qos=1),
            ]
        )
        await asyncio.wait_for(subacked.wait(), 5)

    async def stop(self) -> None:
        await self.client.disconnect()

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        parsed = TOPICS.parse(topic)
        assert parsed is not None, topic
        device_id, kind = parsed
        if kind.value == "heartbeat":
            self.heartbeats.setdefault(device_id, []).append(Heartbeat.model_validate_json(payload))
        elif kind.value == "status":
            self.statuses[device_id] = payload
        else:
            is_alarm = kind.value == "alarm"
            msg = parse_alarm(device_id, payload) if is_alarm else parse_cancel(device_id, payload)
            assert not hasattr(msg, "code"), msg  # a Rejection: the device sent something invalid
            body = json.loads(payload)
            seen = (self.alarms if is_alarm else self.cancels).setdefault(body["alarm_id"], [])
            seen.append(body)
            self.devices_of[body["alarm_id"]] = device_id
            answer = self.policy("alarm" if is_alarm else "cancel", body["alarm_id"], len(seen))
            for status in [answer] if isinstance(answer, str) else answer or []:
                ack = AlarmAck(alarm_id=body["alarm_id"], status=AckStatus(status), reason="test")
                client.publish(f"{ROOT}/devices/{device_id}/alarm/ack", ack.model_dump_json().encode(), qos=1)
        async with self._changed:
            self._changed.notify_all()
        return 0

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        await eventually(predicate, timeout, changed=self._changed)

    async def wait_alarms(self, alarm_id: str, count: int, timeout: float = 10.0) -> None:
        await self.wait_until(lambda: len(self.alarms.get(alarm_id, [])) >= count, timeout)


@pytest.fixture
async def make_gateway(broker: Broker) -> AsyncIterator[Callable[..., Any]]:
    started: list[Gateway] = []

    async def make(policy: Policy = always_stored, url: str | None = None) -> Gateway:
        gw = Gateway(url or broker.url, policy)
        await gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.stop()


def fast_settings(broker: Broker, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mqtt_url": broker.url,
        "topic_root": ROOT,
        "sim_outbox_dir": tmp_path / "outbox",
        "sim_resend_min_s": 0.2,
        "sim_resend_max_s": 0.5,
        "sim_fallback_after_s": 60.0,
        "sim_fallback_mqtt_url": None,
    }
    values.update(overrides)
    return Settings(**values)


# ---------------------------------------------------------------------------- pure parts


def test_outbox_is_durable_and_atomic(tmp_path: Path) -> None:
    box = Outbox(tmp_path, "dev-1")
    assert box.load() == []
    box.add(OutboxEntry(EntryKind.ALARM, "a1", '{"alarm_id":"a1"}', created_at=1.0))
    box.add(OutboxEntry(EntryKind.CANCEL, "a1", '{"alarm_id":"a1"}', created_at=2.0))
    box.mark_sent(EntryKind.ALARM, "a1", now=3.0)
    box.mark_sent(EntryKind.ALARM, "a1", now=4.0)

    again = Outbox(tmp_path, "dev-1")
    loaded = again.load()
    assert [(e.kind, e.alarm_id) for e in loaded] == [(EntryKind.ALARM, "a1"), (EntryKind.CANCEL, "a1")]
    alarm = again.get(EntryKind.ALARM, "a1")
    assert alarm is not None and (alarm.first_sent, alarm.last_sent, alarm.attempts) == (3.0, 4.0, 2)
    assert again.alarm_ids() == ["a1"]
    again.remove(EntryKind.ALARM, "a1")
    again.remove(EntryKind.CANCEL, "a1")
    assert Outbox(tmp_path, "dev-1").load() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-1.json"]  # no temporary files left

    (tmp_path / "dev-1.json").write_text("{not json")
    assert Outbox(tmp_path, "dev-1").load() == []
    assert any(p.name.startswith("dev-1.json.corrupt-") for p in tmp_path.iterdir())


def test_device_ids_are_deterministic_and_mixed() -> None:
    ids = device_ids(5, "sim")
    assert ids == [
        ("sim-pendant-001", DeviceType.PENDANT),
        ("sim-fall_sensor-001", DeviceType.FALL_SENSOR),
        ("sim-pendant-002", DeviceType.PENDANT),
        ("sim-smoke-001", DeviceType.SMOKE),
        ("sim-pendant-003", DeviceType.PENDANT),
    ]
    assert device_ids(5, "sim") == ids
    assert guess_device_type("sim-fall_sensor-001") is DeviceType.FALL_SENSOR
    assert guess_device_type("kitchen") is DeviceType.PENDANT


# ---------------------------------------------------------------------------- against Mosquitto


async def test_press_is_published_and_leaves_outbox_on_stored(
    broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    gw = await make_gateway()
    settings = fast_settings(broker, tmp_path)
    device = SimDevice("dev-pendant-1", DeviceType.PENDANT, settings, heartbeat_interval_s=0.2)
    await device.start()
    try:
        alarm_id = await device.press(text="help")
        await device.wait_for_status(alarm_id, AckStatus.STORED, timeout=10)
        assert device.pending() == []
        assert alarm_id not in device.outbox.path.read_text()
        msg = AlarmMessage.model_validate_json(json.dumps(gw.alarms[alarm_id][0]))
        assert msg.type is AlarmType.ASSISTANCE and msg.priority == 7 and msg.device_id == "dev-pendant-1"
        assert msg.text == "help"
        await gw.wait_until(lambda: len(gw.heartbeats.get("dev-pendant-1", [])) >= 2)
        assert gw.heartbeats["dev-pendant-1"][0].firmware
        await gw.wait_until(lambda: gw.statuses.get("dev-pendant-1") == b"online")
    finally:
        await device.stop()
    await gw.wait_until(lambda: gw.statuses.get("dev-pendant-1") == b"offline")


async def test_resent_while_the_ack_is_missing(
    broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    # Silent on the first two deliveries: the device must resend until it hears "stored".
    gw = await make_gateway(lambda kind, alarm_id, n: "stored" if n >= 3 else None)
    device = SimDevice("dev-fall-1", DeviceType.FALL_SENSOR, fast_settings(broker, tmp_path))
    await device.start()
    try:
        alarm_id = await device.press()
        await gw.wait_alarms(alarm_id, 2)
        assert device.pending() == [alarm_id]
        await device.wait_for_status(alarm_id, AckStatus.STORED, timeout=10)
        assert device.pending() == []
        assert len(gw.alarms[alarm_id]) >= 3
        assert gw.alarms[alarm_id][0]["type"] == "fall"
        assert {json.dumps(a, sort_keys=True) for a in gw.alarms[alarm_id]} == {
            json.dumps(gw.alarms[alarm_id][0], sort_keys=True)
        }  # the same message every time: same alarm_id, same timestamp
    finally:
        await device.stop()


async def test_rejected_is_not_resent(broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]) -> None:
    gw = await make_gateway(lambda kind, alarm_id, n: "rejected")
    device = SimDevice("dev-smoke-1", DeviceType.SMOKE, fast_settings(broker, tmp_path))
    await device.start()
    try:
        alarm_id = await device.press()
        await device.wait_for_status(alarm_id, AckStatus.REJECTED, timeout=10)
        assert device.pending() == []
        assert gw.alarms[alarm_id][0]["type"] == "smoke"
        # Resend delays are 0.2-0.5 s: a second delivery would arrive well within 1.5 s.
        with pytest.raises(TimeoutError):
            await gw.wait_alarms(alarm_id, 2, timeout=1.5)
        assert len(gw.alarms[alarm_id]) == 1
    finally:
        await device.stop()


async def test_unsent_alarm_survives_a_restart(
    broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    settings = fast_settings(broker, tmp_path)
    first = SimDevice("dev-restart", DeviceType.PENDANT, settings)
    await first.start()
    alarm_id = await first.press("fall")
    await first.stop()  # nobody answered: the alarm is only in the outbox on disk
    assert alarm_id in first.outbox.path.read_text()

    gw = await make_gateway()
    second = SimDevice("dev-restart", DeviceType.PENDANT, settings)
    await second.start()
    try:
        await second.wait_for_status(alarm_id, AckStatus.STORED, timeout=10)
        assert second.pending() == []
        assert gw.alarms[alarm_id][0]["type"] == "fall"
        assert alarm_id not in second.outbox.path.read_text()
    finally:
        await second.stop()


async def test_falls_back_to_the_second_broker(
    broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    fallback = Broker(workdir=tmp_path / "fallback-mosquitto")
    fallback.start()
    try:
        silent = await make_gateway(lambda kind, alarm_id, n: None)  # primary: delivered, never answered
        gw = await make_gateway(url=fallback.url)
        settings = fast_settings(broker, tmp_path, sim_fallback_after_s=0.6, sim_fallback_mqtt_url=fallback.url)
        device = SimDevice("dev-fallback", DeviceType.PENDANT, settings)
        await device.start()
        try:
            alarm_id = await device.press()
            await silent.wait_alarms(alarm_id, 2)  # resent on the primary first
            await device.wait_for_status(alarm_id, AckStatus.STORED, timeout=15)
            assert device.pending() == []
            assert alarm_id in gw.alarms
            assert gw.devices_of[alarm_id] == "dev-fallback"
            assert device.path_switches >= 1
        finally:
            await device.stop()
    finally:
        fallback.stop()


async def test_cancel_and_acknowledged(broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]) -> None:
    def policy(kind: str, alarm_id: str, n: int) -> list[str]:
        return ["stored", "acknowledged"] if kind == "alarm" else ([] if n == 1 else ["cancelled"])

    gw = await make_gateway(policy)
    device = SimDevice("dev-cancel", DeviceType.PENDANT, fast_settings(broker, tmp_path))
    await device.start()
    try:
        alarm_id = await device.press()
        await device.wait_for_status(alarm_id, AckStatus.ACKNOWLEDGED, timeout=10)
        assert alarm_id in device.help_coming
        await device.cancel(alarm_id)
        assert device.pending() == [alarm_id]  # the cancel waits for "cancelled" (first one is ignored)
        await device.wait_for_status(alarm_id, AckStatus.CANCELLED, timeout=10)
        assert device.pending() == []
        assert len(gw.cancels[alarm_id]) >= 2
        assert [a.status for a in device.acks] == ["stored", "acknowledged", "cancelled"]
    finally:
        await device.stop()


async def test_control_channel_press_on_a_running_fleet(
    broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    gw = await make_gateway()
    settings = fast_settings(broker, tmp_path)
    fleet = Fleet(settings, 3, prefix="t")
    await fleet.start()
    try:
        assert list(fleet.devices) == ["t-pendant-001", "t-fall_sensor-001", "t-pendant-002"]
        result = await press_via_control(settings, "t-pendant-002", "fall", timeout_s=10)
        assert result is not None and result.via == "fleet"
        assert result.stored, result
        assert gw.devices_of[result.alarm_id] == "t-pendant-002"
        assert gw.alarms[result.alarm_id][0]["type"] == "fall"
        assert fleet.presses == [("t-pendant-002", result.alarm_id)]
        device = fleet.devices["t-pendant-002"]
        await device.wait_for_status(result.alarm_id, AckStatus.STORED, timeout=10)  # its own copy of the ack
        assert device.pending() == []
    finally:
        await fleet.stop()


async def test_fleet_presses_on_schedule(broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]) -> None:
    gw = await make_gateway()
    fleet = Fleet(fast_settings(broker, tmp_path), 2, prefix="s", press_every_s=0.1)
    await fleet.start()
    try:
        await gw.wait_until(lambda: len({gw.devices_of[a] for a in gw.alarms}) == 2)
    finally:
        await fleet.stop()


async def test_press_without_fleet_falls_back_to_standalone(
    broker: Broker, tmp_path: Path, make_gateway: Callable[..., Any]
) -> None:
    gw = await make_gateway()
    settings = fast_settings(broker, tmp_path)
    assert await press_via_control(settings, "sim-smoke-009", None, answer_timeout_s=0.5) is None
    result = await press_standalone(settings, "sim-smoke-009", DeviceType.SMOKE, None, timeout_s=10)
    assert result.via == "standalone" and result.stored
    assert gw.alarms[result.alarm_id][0]["type"] == "smoke"
    assert Outbox(settings.sim_outbox_dir, "sim-smoke-009").load() == []
