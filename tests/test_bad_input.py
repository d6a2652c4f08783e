"""Bad input is refused clearly, logged and counted; the gateway and receiver keep working."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from devices import DeviceType
from gateway import metrics
from gateway.registry import retire_device
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
from trygg.db import engine_scope, session_factory

SCRAPE_TOKEN = secrets.token_urlsafe(32)


def now() -> str:
    return datetime.now(UTC).isoformat()


def rejected_count(code: str) -> float:
    value: float = metrics.REJECTED.labels(code)._value.get()
    return value


@pytest.mark.parametrize(
    ("payload", "code", "reason_part"),
    [
        ({"alarm_id": "t1", "type": "fall", "ts": now(), "priority": "high"}, "invalid", "priority"),
        ({"alarm_id": "t2", "type": "fall", "ts": now(), "priority": 12}, "invalid", "priority"),
        ({"alarm_id": "t3", "type": "bogus", "ts": now()}, "invalid", "type"),
        ({"alarm_id": "t4", "type": "fall"}, "invalid", "ts"),
        ({"alarm_id": "t5", "type": "fall", "ts": "2026-01-01T00:00:00"}, "invalid", "UTC offset"),
        ({"alarm_id": "t6", "type": "fall", "ts": now(), "battery_pct": "full"}, "invalid", "battery_pct"),
        ({"alarm_id": "t7", "type": "fall", "ts": now(), "device_id": "other"}, "device_mismatch", "differs"),
        ({"alarm_id": "t8", "type": "device_offline", "ts": now()}, "invalid", "gateway only"),
        ({"alarm_id": "t9", "type": "fall", "ts": 1790000000}, "invalid", "ts"),
        ({"alarm_id": "t10", "type": "fall", "ts": now(), "location": {"lat": "59.3"}}, "invalid", "lat"),
    ],
)
async def test_invalid_alarm_is_rejected_with_reason(
    broker: Broker, tmp_path: Path, payload: dict[str, Any], code: str, reason_part: str
) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p1") as device:
        before = rejected_count(code)
        with capture_logs() as logs:
            device.publish("alarm", payload)
            ack = await device.next_ack(alarm_id=payload["alarm_id"])
        assert ack["status"] == "rejected" and ack["code"] == code and ack["subject"] == "alarm"
        assert reason_part in ack["reason"]
        assert rejected_count(code) == before + 1
        assert any(e["event"] == "device message rejected" and e["code"] == code for e in logs)
        # and the gateway still takes a good alarm
        device.publish("alarm", {"alarm_id": "good", "type": "fall", "ts": now()})
        assert (await device.next_ack(alarm_id="good"))["status"] == "stored"


async def test_unreadable_payloads_are_counted_and_do_not_stop_intake(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p1") as device:
        before = {c: rejected_count(c) for c in ("oversize", "not_json", "not_object")}
        big = {"alarm_id": "big", "type": "fall", "ts": now(), "text": "x" * 9000}
        device.publish("alarm", json.dumps(big).encode())
        device.publish("alarm", b"\xff\xfe not json")
        device.publish("alarm", b"[1, 2, 3]")
        device.publish("alarm", {"alarm_id": "after", "type": "assistance", "ts": now()})
        # acks come in order for one device: once "after" is answered, the three before it were handled
        assert (await device.next_ack(alarm_id="after"))["status"] == "stored"
        assert device.acks.empty()  # nothing could be answered for payloads without a readable alarm_id
        assert rejected_count("oversize") == before["oversize"] + 1
        assert rejected_count("not_json") == before["not_json"] + 1
        assert rejected_count("not_object") == before["not_object"] + 1


async def test_unknown_and_retired_devices_are_refused(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"old": DeviceType.PENDANT})
    async with engine_scope(s.gateway_database_url) as engine:
        async with session_factory(engine).begin() as session:
            await retire_device(session, "old")
    async with running_receiver(s), running_gateway(s):
        async with RawDevice(s, "stranger") as stranger:
            stranger.publish("alarm", {"alarm_id": "s1", "type": "fall", "ts": now()})
            ack = await stranger.next_ack(alarm_id="s1")
            assert ack["status"] == "rejected" and "not registered" in ack["reason"]
        async with RawDevice(s, "old") as old:
            old.publish("alarm", {"alarm_id": "o1", "type": "fall", "ts": now()})
            ack = await old.next_ack(alarm_id="o1")
            assert ack["status"] == "rejected" and "retired" in ack["reason"]
            old.publish("alarm/cancel", {"alarm_id": "never-sent", "ts": now()})
            ack = await old.next_ack(alarm_id="never-sent")
            assert ack["status"] == "rejected" and ack["subject"] == "cancel"


async def test_reused_alarm_id_for_a_different_alarm_is_refused(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p1") as device:
        first = {"alarm_id": "same", "type": "assistance", "ts": "2026-11-23T01:00:00Z"}
        device.publish("alarm", first)
        assert (await device.next_ack(alarm_id="same"))["status"] == "stored"
        device.publish("alarm", first)  # a genuine resend
        assert (await device.next_ack(alarm_id="same"))["status"] == "stored"
        device.publish("alarm", {**first, "type": "fall", "ts": "2026-11-23T02:00:00Z"})
        ack = await device.next_ack(alarm_id="same")
        assert ack["status"] == "rejected" and ack["code"] == "alarm_id_reused"


async def test_cancel_rejected_before_its_alarm_is_stored_keeps_the_alarm_pending(
    broker: Broker, tmp_path: Path
) -> None:
    """A cancel that overtakes its alarm is refused; the simulated device must still deliver the alarm."""
    from devices import AckStatus
    from firmware_sim.device import SimDevice

    # the device's next resend comes 2-3 s after the press, long after the cancel below
    s = make_settings(tmp_path, broker.url).model_copy(update={"sim_resend_min_s": 2.0, "sim_resend_max_s": 3.0})
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    device = SimDevice("p1", DeviceType.PENDANT, s)
    await device.start()
    try:
        alarm_id = await device.press()  # no gateway yet: nobody stores it
        async with running_receiver(s), RawDevice(s, "p1") as raw, running_gateway(s):
            raw.publish("alarm/cancel", {"alarm_id": alarm_id, "ts": now()})
            ack = await raw.next_ack(alarm_id=alarm_id)
            assert (ack["status"], ack["subject"], ack["code"]) == ("rejected", "cancel", "unknown_alarm")
            await device.wait_for_status(alarm_id, AckStatus.STORED, 15)
        assert AckStatus.REJECTED in device.statuses[alarm_id]  # it heard the rejection and kept the alarm
        assert device.pending() == []
    finally:
        await device.stop()


async def test_receiver_refuses_bad_requests_without_500(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    await create_user(s, "car1", "patrol")
    await create_user(s, "tech", "technician")
    async with running_receiver(s), running_gateway(s), RawDevice(s, "p1") as device:
        async with httpx.AsyncClient(base_url=s.receiver_url) as anon:
            assert (await anon.get("/api/v1/alarms")).status_code == 401
            r = await anon.get("/api/v1/alarms", headers={"Authorization": "Bearer nope"})
            assert r.status_code == 401
            r = await anon.post("/api/v1/auth/token", json={"username": "op", "password": "wrong-password"})
            assert r.status_code == 401
            r = await anon.post("/api/v1/auth/token", json={"username": 5})
            assert r.status_code == 422
            r = await anon.post("/api/v1/intake", json={"items": []})
            assert r.status_code == 401
            r = await anon.post("/api/v1/intake", content=b"{not json", headers={"Authorization": "Bearer x"})
            assert r.status_code == 401
            assert (await anon.get("/health")).status_code == 200

        op = Api(s)
        await op.login("op")
        device.publish("alarm", {"alarm_id": "a", "type": "fall", "ts": now()})
        await device.next_ack(alarm_id="a")
        async with LiveFeedReader(op) as feed:
            rows = await op.alarms(device_id="p1")
            if not rows:
                await feed.next_alarm(alarm_id="a")
                rows = await op.alarms(device_id="p1")
        pk = rows[0]["id"]
        assert (await op.act(pk, "on-site")).status_code == 409  # not assigned yet
        assert (await op.act(999999, "acknowledge")).status_code == 404
        assert (await op.act(pk, "resolve", {"outcome": ""})).status_code == 422
        assert (await op.http.get("/api/v1/alarms", params={"min_priority": 42})).status_code == 422
        assert (await op.http.get("/api/v1/alarms", params={"state": "bogus"})).status_code == 422
        assert (await op.http.post(f"/api/v1/alarms/{pk}/acknowledge", content=b"[")).status_code == 422
        assert (await op.act(pk, "acknowledge")).status_code == 200
        assert (await op.act(pk, "acknowledge")).status_code == 409
        assert (await op.act(pk, "assign", {"patrol": "tech"})).status_code == 422  # not a patrol

        patrol = Api(s)
        await patrol.login("car1")
        assert (await patrol.act(pk, "acknowledge")).status_code == 403
        assert (await patrol.http.get(f"/api/v1/alarms/{pk}")).status_code == 404  # not assigned to car1
        assert (await op.act(pk, "assign", {"patrol": "car1"})).status_code == 200
        assert [a["id"] for a in await patrol.alarms()] == [pk]
        assert (await patrol.act(pk, "on-site")).status_code == 200

        tech = Api(s)
        await tech.login("tech")
        assert (await tech.http.get("/api/v1/alarms")).status_code == 403

        assert (await op.http.post("/api/v1/auth/logout")).status_code == 204
        assert (await op.http.get("/api/v1/alarms")).status_code == 401
        for api in (op, patrol, tech):
            await api.close()


async def test_metrics_need_a_token(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, metrics_token=SCRAPE_TOKEN)
    await prepare_stores(s)
    await create_user(s, "op", "operator")
    await create_user(s, "tech", "technician")
    async with running_receiver(s), running_gateway(s, http=True):
        gateway_url = f"http://127.0.0.1:{s.gateway_http_port}"
        async with httpx.AsyncClient() as http:
            for base in (s.receiver_url, gateway_url):
                assert (await http.get(f"{base}/metrics")).status_code == 401
                ok = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
                assert ok.status_code == 200 and "trygg_" in ok.text
                assert (await http.get(f"{base}/health")).status_code == 200
        op, tech = Api(s), Api(s)
        await op.login("op")
        await tech.login("tech")
        assert (await op.http.get("/metrics")).status_code == 401
        assert (await tech.http.get("/metrics")).status_code == 200
        await op.close()
        await tech.close()
