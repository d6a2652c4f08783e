"""One device's flood does not starve the others (issue 8, point 6).

One device publishes 2,000 valid alarms as fast as it can (the issue's 10,000/s for 10 s, scaled to a test); while
the flood is still being forwarded, another device's fall alarm reaches the operators' live feed. Every flood alarm
is stored at the gateway (0 lost) and collapsed at the receiver into one queue item with its count, latest time and
one history line each; the flooding device is flagged for technicians (``GET /api/v1/floods``).

In front of the store (the broker delivers the gateway's session in order): while the gateway is still taking a
flood in, another device's alarm is ``stored`` within 1 s and on the live feed soon after, by the bypass
(``gateway/dispatch.py``), the intake committing flood items last and the gateway's read-ahead gate
(``gateway/core.py``), and stored and shown once; every flood alarm is stored in the end."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from devices import AlarmMessage, DeviceType
from gateway.db import migrate
from gateway.intake import IntakeItem
from gateway.intake_writer import IntakeWriter
from gateway.models import OutboxRow
from gateway.records import Outcome
from gateway.registry import add_device
from testing.broker import Broker
from testing.harness import (
    Api,
    GatewayProcess,
    LiveFeedReader,
    RawDevice,
    ServiceProcess,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from testing.wait import eventually
from trygg import mqtt
from trygg.db import create_engine, session_factory

FLOOD = 2000  # the 100,000 scaled to a test under a minute on a loaded 2-core machine
# The flood the bypass is measured against: long enough that the gateway (about 1,800 alarms a second on a quiet
# machine) is still taking it in when the other device's alarm comes, short enough for a test.
FLOOD_AHEAD = 8000


def count(db: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


async def test_a_flood_from_one_device_does_not_delay_another_devices_alarm(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(
        tmp_path, broker.url, device_alarm_rate_limit=100, device_alarm_rate_window_s=600.0, forward_batch_max=20
    )
    await prepare_stores(s, {"flood": DeviceType.PENDANT, "calm": DeviceType.FALL_SENSOR})
    await create_user(s, "op", "operator")
    await create_user(s, "tech", "technician")
    gateway_db, receiver_db = tmp_path / "gateway.db", tmp_path / "receiver.db"
    flooder = mqtt.MqttConnection(
        f"flood-{time.monotonic_ns()}", mqtt.MqttEndpoint.from_url(s.mqtt_url), persistent=False
    )
    async with running_receiver(s), running_gateway(s, http=True), RawDevice(s, "calm") as calm:
        op, tech = Api(s), Api(s)
        await op.login("op")
        await tech.login("tech")
        await flooder.connect()
        try:
            async with LiveFeedReader(op) as feed:
                ts = datetime.now(UTC).isoformat()
                topic = f"{s.topic_root}/devices/flood/alarm"
                for i in range(FLOOD):  # as fast as the connection takes them (QoS 1, the broker's window)
                    flooder.publish(topic, json.dumps({"alarm_id": f"f{i}", "type": "assistance", "ts": ts}).encode())
                # The whole flood is stored and being forwarded (small forward batches keep it on its way long enough
                # on any machine); now a real alarm from another device. How fast the gateway takes a flood in is
                # bench.alarm_latency's (docs/benchmarks.md).
                await eventually(lambda: _stored(gateway_db) == FLOOD, timeout=180)
                assert _at_receiver(receiver_db) < FLOOD, "the flood was forwarded before the test could go on"
                sent = time.monotonic()
                calm.publish("alarm", {"alarm_id": "c1", "type": "fall", "ts": datetime.now(UTC).isoformat()})
                stored = await calm.next_ack(timeout=60, alarm_id="c1")
                stored_after = time.monotonic() - sent
                seen = await feed.next_alarm(timeout=60, alarm_id="c1")
                took = time.monotonic() - sent
                flood_at_receiver = _at_receiver(receiver_db)
                assert seen["device_id"] == "calm" and seen["state"] == "new"
                # Not behind the flood: it was on the live feed while flood alarms were still on their way.
                assert flood_at_receiver < FLOOD, f"the calm alarm came after all {FLOOD} flood alarms ({took:.1f} s)"
                assert stored["status"] == "stored"
                assert took < 30, f"calm alarm on the live feed after {took:.1f} s (stored after {stored_after:.1f} s)"

            # 0 lost: every flood alarm stored at the gateway, and at the receiver in one item, each in its history
            assert _stored(gateway_db) == FLOOD
            rows: list[dict[str, Any]] = await eventually(lambda: _flood_item(op), timeout=180)
            assert len(rows) == 1, "the flood is one queue item"
            item = rows[0]
            assert item["repeats"] == FLOOD - 1 and item["last_repeat_at"] is not None
            detail = (await op.http.get(f"/api/v1/alarms/{item['id']}")).json()
            actions = [e["action"] for e in detail["events"]]
            assert actions.count("received") == 1 and actions.count("repeated") == FLOOD - 1
            repeated = {e["params"]["alarm_id"] for e in detail["events"] if e["action"] == "repeated"}
            assert repeated == {f"f{i}" for i in range(FLOOD)} - {item["alarm_id"]}

            # the flooding device is flagged for technicians; the calm one is not
            async with httpx.AsyncClient(base_url=s.gateway_url, timeout=30) as http:
                r = await http.get("/api/v1/floods", headers={"Authorization": f"Bearer {tech.token}"})
            assert r.status_code == 200, r.text
            assert [f["device_id"] for f in r.json()] == ["flood"]
        finally:
            await flooder.disconnect()
            await op.close()
            await tech.close()


def _stored(gateway_db: Path) -> int:
    return count(gateway_db, "SELECT count(*) FROM intake_alarms WHERE device_id = 'flood'")


def _at_receiver(receiver_db: Path) -> int:
    """Flood alarms the receiver has: its items and what was collapsed into them."""
    return count(receiver_db, "SELECT coalesce(sum(repeats + 1), 0) FROM queue_alarms WHERE device_id = 'flood'")


async def _flood_item(op: Api) -> list[dict[str, Any]]:
    rows = await op.alarms(device_id="flood")
    return rows if rows and rows[0].get("repeats") == FLOOD - 1 else []


async def test_under_a_flood_another_devices_alarm_is_stored_within_1_s(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, device_alarm_rate_limit=100, device_alarm_rate_window_s=600.0)
    await prepare_stores(s, {"flood": DeviceType.PENDANT, "calm": DeviceType.FALL_SENSOR})
    await create_user(s, "op", "operator")
    gateway_db, receiver_db = tmp_path / "gateway.db", tmp_path / "receiver.db"
    # Each service its own process, as in production: the gateway's flood work does not share this test's loop.
    receiver = ServiceProcess(s, tmp_path / "receiver.log", "receiver")
    gateway = GatewayProcess(s, tmp_path / "gateway.log")
    flooder = mqtt.MqttConnection(
        f"flood-{time.monotonic_ns()}", mqtt.MqttEndpoint.from_url(s.mqtt_url), persistent=False
    )
    op = Api(s)
    receiver.start()
    gateway.start()
    try:
        async with httpx.AsyncClient(base_url=s.gateway_url, timeout=5) as http:

            async def healthy() -> bool:  # connected and subscribed
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(healthy, timeout=30)
        await op.login("op")
        await flooder.connect()
        async with RawDevice(s, "calm") as calm, LiveFeedReader(op) as feed:
            ts = datetime.now(UTC).isoformat()
            topic = f"{s.topic_root}/devices/flood/alarm"
            for i in range(FLOOD_AHEAD):  # as fast as the connection takes them (QoS 1, the broker's window)
                flooder.publish(topic, json.dumps({"alarm_id": f"f{i}", "type": "assistance", "ts": ts}).encode())
            # the device is over its limit and the gateway's session is full of its flood: now another device's alarm
            await eventually(lambda: _stored(gateway_db) > 300, timeout=60)
            sent = time.monotonic()
            calm.publish("alarm", {"alarm_id": "c1", "type": "fall", "ts": datetime.now(UTC).isoformat()})
            stored = await calm.next_ack(timeout=60, alarm_id="c1")
            stored_after = time.monotonic() - sent
            seen = await feed.next_alarm(timeout=60, alarm_id="c1")
            took = time.monotonic() - sent
            flood_stored = _stored(gateway_db)
            assert stored["status"] == "stored" and seen["device_id"] == "calm" and seen["state"] == "new"
            # the gateway was still taking the flood in: without the bypass the alarm would have waited behind it
            assert flood_stored < FLOOD_AHEAD, f"the flood was all stored before the calm alarm ({took:.2f} s)"
            assert stored_after < 1.0, f"'stored' after {stored_after:.2f} s under the flood ({flood_stored} stored)"
            # The 1 s holds for the gateway's part above. To the live feed the forwarder's batch in flight to
            # the receiver (flood rows) comes on top: 0.1-0.3 s on a quiet machine, up to 1 s under load
            # (docs/benchmarks.md, "Flood"), 2.02 s once in a full suite run beside other tests; bounded here so that
            # a loaded machine does not fail the test (without the bypass it is the whole flood's time, 5-15 s).
            assert took < 3.0, f"on the live feed after {took:.2f} s under the flood ({flood_stored} stored)"

            # 0 lost: the whole flood stored in the end; the calm alarm stored once and shown once (its main copy
            # came behind the flood as a duplicate)
            await eventually(lambda: _stored(gateway_db) == FLOOD_AHEAD, timeout=180, interval=0.5)
            await eventually(lambda: _at_receiver(receiver_db) == FLOOD_AHEAD, timeout=180, interval=0.5)
            assert count(gateway_db, "SELECT count(*) FROM intake_alarms WHERE device_id = 'calm'") == 1
            assert count(receiver_db, "SELECT count(*) FROM queue_alarms WHERE device_id = 'calm'") == 1
            again = []
            while not feed.events.empty():
                event, data = feed.events.get_nowait()
                if event == "alarm" and data.get("device_id") == "calm" and data.get("state") == "new":
                    again.append(data)
            assert again == [], "the calm alarm was shown twice"
    finally:
        await flooder.disconnect()
        await op.close()
        gateway.stop()
        receiver.stop()


async def test_the_intake_commits_a_flooding_devices_items_after_everyone_elses_in_their_order(db_url: str) -> None:
    eng = create_engine(db_url)
    await migrate(eng)
    sessions = session_factory(eng)
    async with sessions.begin() as session:
        await add_device(session, "flood", DeviceType.PENDANT)
        await add_device(session, "calm", DeviceType.FALL_SENSOR)
    flagged = {"flood"}
    writer = IntakeWriter(sessions, batch_max=10, held=lambda device_id: device_id in flagged)
    writer.start()
    try:
        ts = datetime.now(UTC).isoformat()

        def item(device_id: str, alarm_id: str) -> IntakeItem:
            body = json.dumps({"alarm_id": alarm_id, "type": "assistance", "ts": ts})
            return IntakeItem(device_id, AlarmMessage.model_validate_json(body))

        flood = [writer.submit(item("flood", f"f{i}")) for i in range(25)]  # queued before the calm one
        calm = writer.submit(item("calm", "c1"))
        assert await asyncio.wait_for(calm, 20) is Outcome.STORED
        # the flag ends while flood items are still held: the device's next item still comes after them
        flagged.clear()
        flood.append(writer.submit(item("flood", "f25")))
        assert set(await asyncio.wait_for(asyncio.gather(*flood), 20)) == {Outcome.STORED}
    finally:
        await writer.stop()
    async with sessions() as session:
        rows = (await session.execute(select(OutboxRow.alarm_id).order_by(OutboxRow.id))).scalars().all()
    await eng.dispose()
    assert rows[0] == "c1", f"the calm alarm was committed after {rows.index('c1')} flood alarms"
    assert rows[1:] == [f"f{i}" for i in range(26)], "the flooding device's alarms out of their order"
