"""Poison messages stay with themselves (issue 8, point 2): rejected, counted, logged without personal text, kept
in a bounded dead-letter table, acknowledged at the MQTT level; intake goes on. A store that is down is not poison:
the message waits and is handled when the store is back."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from devices import DeviceType
from gateway import metrics
from testing.broker import Broker
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
from trygg import mqtt

PERSONAL = "Anna Andersson, portkod 4711"


def now() -> str:
    return datetime.now(UTC).isoformat()


def deep_payload(alarm_id: str) -> bytes:
    """About 2 KB nested 1,000 levels deep: RecursionError in Python's json parser."""
    return b'{"alarm_id":"' + alarm_id.encode() + b'","type":"fall","x":' + b"[" * 1000 + b"]" * 1000 + b"}"


def overflow_payload(alarm_id: str) -> bytes:
    """A valid-looking fall whose timestamp cannot be converted to UTC: OverflowError."""
    body = {"alarm_id": alarm_id, "type": "fall", "ts": "0001-01-01T00:00:00+14:00", "text": PERSONAL}
    return json.dumps(body).encode()


async def publish_confirmed(s: Any, device_id: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 as ``device_id``, at most 50 awaiting the broker's PUBACK at a time (the broker's
    receive maximum is 100), in order."""
    tracker = mqtt.PubackTracker()
    client = mqtt.make_client(f"pub-{device_id}-{os.urandom(2).hex()}", persistent=False, tracker=tracker)
    await mqtt.connect(client, mqtt.MqttEndpoint.from_url(s.mqtt_url))
    try:
        topic = f"{s.topic_root}/devices/{device_id}/alarm"
        for start in range(0, len(payloads), 50):
            chunk = payloads[start : start + 50]
            await asyncio.wait_for(asyncio.gather(*(tracker.publish_confirmed(client, topic, p) for p in chunk)), 10)
    finally:
        await client.disconnect()


def counter(metric: Any, *labels: str) -> float:
    value: float = (metric.labels(*labels) if labels else metric)._value.get()
    return value


async def dead_letters(s: Any, token: str, **params: Any) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.gateway_http_port}/api/v1") as http:
        r = await http.get("/dead-letters", params=params, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()
        return rows


async def test_200_poison_messages_then_a_good_alarm_is_stored_within_a_second(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, dead_letter_keep=150, dead_letter_payload_max_bytes=512)
    await prepare_stores(s, {"bad": DeviceType.PENDANT, "good": DeviceType.PENDANT})
    await create_user(s, "tech", "technician")
    await create_user(s, "op", "operator")
    await create_user(s, "car", "patrol")
    before = {code: counter(metrics.DEAD_LETTERS, code) for code in ("too_deep", "invalid")}
    with capture_logs() as logs:
        async with running_receiver(s), RawDevice(s, "bad") as bad, RawDevice(s, "good") as good:
            async with running_gateway(s, http=True):
                poison = [deep_payload(f"d{i}") if i % 2 else overflow_payload(f"o{i}") for i in range(200)]
                await publish_confirmed(s, "bad", poison)
                started = time.monotonic()
                good.publish("alarm", {"alarm_id": "g1", "type": "fall", "ts": now()})
                ack = await good.next_ack(alarm_id="g1", timeout=30)
                took = time.monotonic() - started
                assert ack["status"] == "stored"
                # Measured 70-85 ms here with the machine's load at 3-4, so 1 s (the target) does not flake;
                # where poison escapes the handler the alarm never arrives at all (the broker's window is full).
                assert took < 1.0, f"good alarm stored {took:.2f} s after it was sent"
                # the overflow ones had a readable alarm_id: their device was told, with a code
                rejected = await bad.next_ack(alarm_id="o0")
                assert rejected["status"] == "rejected" and rejected["code"] == "invalid"

                tech, op, car = Api(s), Api(s), Api(s)
                await tech.login("tech")
                await op.login("op")
                await car.login("car")
                assert tech.token and op.token and car.token
                rows = await eventually(lambda: _full(s, tech.token or "", 150), timeout=10)
                assert len(rows) == 150  # bounded: the newest 150 of 200
                assert {r["device_id"] for r in rows} == {"bad"}
                assert rows[0]["id"] > rows[-1]["id"]  # newest first
                deep = next(r for r in rows if r["code"] == "too_deep")
                assert deep["truncated"] and deep["size"] > 2000 and len(deep["payload_text"]) <= 512
                overflow = next(r for r in rows if r["code"] == "invalid")
                assert PERSONAL in overflow["payload_text"]  # kept for the technician, behind a login
                assert len(await dead_letters(s, op.token, limit=5)) == 5  # operators may read too
                async with httpx.AsyncClient() as http:
                    url = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/dead-letters"
                    refused = await http.get(url, headers={"Authorization": f"Bearer {car.token}"})
                    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"
                for api in (tech, op, car):
                    await api.close()

            # Every poison message was acknowledged at the MQTT level: a restarted gateway (same persistent
            # session) is not handed any of them again.
            async with running_gateway(s):
                good.publish("alarm", {"alarm_id": "g2", "type": "fall", "ts": now()})
                assert (await good.next_ack(alarm_id="g2"))["status"] == "stored"
    assert counter(metrics.DEAD_LETTERS, "too_deep") == before["too_deep"] + 100
    assert counter(metrics.DEAD_LETTERS, "invalid") == before["invalid"] + 100
    logged = [e for e in logs if e.get("event") == "device message rejected"]
    assert len(logged) >= 200
    assert not [e for e in logs if "Anna" in repr(e)], "personal text reached the log"


async def _full(s: Any, token: str, n: int) -> list[dict[str, Any]] | None:
    rows = await dead_letters(s, token, limit=1000)
    return rows if len(rows) >= n else None


async def test_a_store_that_is_down_is_waited_for_not_dead_lettered(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    db_path = tmp_path / "gateway.db"
    async with running_receiver(s), running_gateway(s, http=True), RawDevice(s, "p1") as device:
        device.publish("alarm", {"alarm_id": "warm", "type": "fall", "ts": now()})
        assert (await device.next_ack(alarm_id="warm"))["status"] == "stored"
        errors_before = counter(metrics.STORE_ERRORS)
        # another process holds the database's write lock: every write of the gateway fails ("database is locked")
        lock = sqlite3.connect(db_path, timeout=0, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            device.publish("alarm", {"alarm_id": "during", "type": "fall", "ts": now()})
            device.publish("alarm", b"[1, 2]")  # poison, too: its dead letter waits for the store as well
            await eventually(lambda: counter(metrics.STORE_ERRORS) > errors_before, timeout=30)
            assert device.acks.empty(), "nothing may be answered while the store is down"
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert (await device.next_ack(alarm_id="during", timeout=30))["status"] == "stored"
        await create_user(s, "tech", "technician")
        tech = Api(s)
        await tech.login("tech")
        rows = await eventually(lambda: _full(s, tech.token or "", 1), timeout=10)
        assert [r["code"] for r in rows] == ["not_object"]  # the good alarm was never taken for poison
        await tech.close()


async def test_dead_letters_on_the_command_line(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from trygg.settings import get_settings
    from trygg_cli.app import app

    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p1") as device:
        device.publish("alarm", b"\xff\xfe not json")
        device.publish("alarm", {"alarm_id": "after", "type": "fall", "ts": now(), "text": PERSONAL})
        assert (await device.next_ack(alarm_id="after"))["status"] == "stored"
    monkeypatch.setenv("TRYGG_GATEWAY_DATABASE_URL", s.gateway_database_url)
    get_settings.cache_clear()
    try:
        result = await asyncio.to_thread(CliRunner().invoke, app, ["dead-letters", "list"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    [line] = result.output.splitlines()
    assert "\tp1\talarm\tnot_json\t" in line
