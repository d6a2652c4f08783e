"""/health answers 503, with reason codes, for real failures (issue 8, point 11): a store that cannot commit (another
process holds its write lock), a stalled MQTT session (the broker stopped with SIGSTOP while a publish waits for its
PUBACK), a forwarding backlog that grew old (no receiver); and 200 again once the cause is gone. The receiver's
/health likewise for its store. The shipped Prometheus alert rules parse and name metrics the services export."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devices import DeviceType
from testing.broker import Broker
from testing.harness import RawDevice, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from trygg.settings import Settings

RULES = Path(__file__).resolve().parent.parent / "config" / "prometheus" / "trygg-alerts.yml"
FAST = {
    "health_store_probe_s": 0.2,
    "health_store_timeout_s": 0.5,
    "health_mqtt_stall_s": 1.0,
    "health_backlog_max_s": 1.0,
}


async def health(url: str) -> tuple[int, set[str]]:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{url}/health")
    body: dict[str, Any] = r.json()
    return r.status_code, {p["code"] for p in body.get("problems", [])}


def failing_with(url: str, *codes: str) -> Any:
    async def check() -> bool:
        status, found = await health(url)
        return status == 503 and bool(found & set(codes))

    return check


def healthy(url: str) -> Any:
    async def check() -> bool:
        return (await health(url))[0] == 200

    return check


def gateway_url(s: Settings) -> str:
    return f"http://127.0.0.1:{s.gateway_http_port}"


async def test_gateway_health_fails_while_its_store_cannot_commit(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, **FAST)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    async with running_receiver(s), running_gateway(s, http=True):
        await eventually(healthy(gateway_url(s)), timeout=30)
        lock = sqlite3.connect(tmp_path / "gateway.db", timeout=0, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock: every commit fails
        try:
            await eventually(
                failing_with(gateway_url(s), "health.store_unresponsive", "health.store_failing"), timeout=30
            )
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        await eventually(healthy(gateway_url(s)), timeout=60)


async def test_gateway_health_fails_while_the_broker_stalls_the_session(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, **FAST)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    assert broker.proc is not None
    async with running_receiver(s), running_gateway(s, http=True) as gw, RawDevice(s, "p1") as device:
        device.publish("alarm", {"alarm_id": "a1", "type": "fall", "ts": datetime.now(UTC).isoformat()})
        assert (await device.next_ack(alarm_id="a1", timeout=30))["status"] == "stored"
        await eventually(healthy(gateway_url(s)), timeout=30)
        os.kill(broker.proc.pid, signal.SIGSTOP)
        try:
            # work for the session: an ack to a device, whose PUBACK the stopped broker never sends
            assert gw.port.publish(f"{s.topic_root}/devices/p1/alarm/ack", b'{"alarm_id":"a1","status":"stored"}')
            await eventually(failing_with(gateway_url(s), "health.mqtt_stalled"), timeout=30)
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        await eventually(healthy(gateway_url(s)), timeout=30)


async def test_gateway_health_fails_while_the_backlog_grows_old(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, **FAST)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    async with running_gateway(s, http=True), RawDevice(s, "p1") as device:  # no receiver: nothing is confirmed
        device.publish("alarm", {"alarm_id": "a1", "type": "fall", "ts": datetime.now(UTC).isoformat()})
        assert (await device.next_ack(alarm_id="a1", timeout=30))["status"] == "stored"
        await eventually(failing_with(gateway_url(s), "health.backlog_old"), timeout=30)
        async with running_receiver(s):
            await eventually(healthy(gateway_url(s)), timeout=30)


async def test_receiver_health_fails_while_its_store_cannot_commit(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, **FAST)
    await prepare_stores(s)
    url = f"http://127.0.0.1:{s.receiver_http_port}"
    async with running_receiver(s):
        await eventually(healthy(url), timeout=30)
        lock = sqlite3.connect(tmp_path / "receiver.db", timeout=0, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            await eventually(failing_with(url, "health.store_unresponsive", "health.store_failing"), timeout=30)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        await eventually(healthy(url), timeout=60)


def test_alert_rules_parse_and_use_exported_metrics() -> None:
    from prometheus_client import REGISTRY

    import alarm_receiver.metrics  # noqa: F401  (registers the receiver's metrics)
    import gateway.metrics  # noqa: F401

    promtool = shutil.which("promtool")
    if promtool is not None:
        done = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
    doc = yaml.safe_load(RULES.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules and all({"alert", "expr", "labels", "annotations"} <= set(rule) for rule in rules)
    families = list(REGISTRY.collect())  # a labelled family without children yet has no samples: name it too
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    exported |= {s.name for f in families for s in f.samples}
    for rule in rules:
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), rule["alert"]
        named = {word for word in _words(expr) if word.startswith("trygg_")}
        assert named, f"{rule['alert']} names no Trygg metric"
        assert named <= exported, f"{rule['alert']}: {named - exported} not exported"
        assert rule["labels"]["severity"] in ("page", "ticket")


def _words(expr: str) -> list[str]:
    out, word = [], ""
    for ch in expr:
        if ch.isalnum() or ch == "_":
            word += ch
        else:
            out.append(word)
            word = ""
    return [*out, word]


@pytest.fixture(autouse=True)
def _rules_exist() -> None:
    assert RULES.is_file(), f"{RULES} is missing"
