"""One device's flood does not starve the others (issue 8, point 6).

One device publishes 2,000 valid alarms as fast as it can (the issue's 10,000/s for 10 s, scaled to a test); while
the flood is still being forwarded, another device's fall alarm reaches the operators' live feed. Every flood alarm
is stored at the gateway (0 lost) and collapsed at the receiver into one queue item with its count, latest time and
one history line each; the flooding device is flagged for technicians (``GET /api/v1/floods``)."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devices import DeviceType
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
from trygg import mqtt

FLOOD = 2000  # the 100,000 scaled to a test under a minute on a loaded 2-core machine


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
