"""trygg.broker.LocalBroker: Mosquitto as a child process, and the embedded amqtt fallback."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import gmqtt  # type: ignore[import-untyped,unused-ignore]
import pytest
from gmqtt.mqtt.constants import MQTTv311  # type: ignore[import-untyped,unused-ignore]

from testing.broker import free_port
from trygg.broker import LocalBroker, find_mosquitto, mosquitto_config
from trygg.mqtt import MqttEndpoint, connect, make_client

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None, reason="mosquitto is not installed (.ci/run installs it)"
)


async def _round_trip(publisher: Any, subscriber: Any, topic: str, payload: bytes) -> None:
    """Subscribe, wait for the SUBACK, publish QoS 1 and wait for the message (5 s each)."""
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    subscribed = asyncio.Event()

    async def on_message(client: Any, t: str, p: bytes, qos: int, props: dict[str, Any]) -> int:
        await received.put((t, p))
        return 0

    def on_subscribe(client: Any, mid: int, qos: Any, props: Any) -> None:
        subscribed.set()

    subscriber.on_message = on_message
    subscriber.on_subscribe = on_subscribe
    subscriber.subscribe(topic, qos=1)
    await asyncio.wait_for(subscribed.wait(), 5)
    publisher.publish(topic, payload, qos=1)
    got_topic, got_payload = await asyncio.wait_for(received.get(), 5)
    assert got_topic == topic
    assert got_payload == payload


def test_mosquitto_config_has_listener_and_persistence(tmp_path: Path) -> None:
    text = mosquitto_config(18830, tmp_path, as_root=True)
    assert "listener 18830 127.0.0.1" in text
    assert "persistence true" in text
    assert f"persistence_location {tmp_path}/" in text
    assert "user root" in text
    assert "user root" not in mosquitto_config(18830, tmp_path, as_root=False)


@needs_mosquitto
async def test_local_broker_mosquitto_round_trip(tmp_path: Path) -> None:
    port = free_port()
    async with LocalBroker(tmp_path / "data", port) as broker:
        assert broker.kind == "mosquitto"
        assert broker.url == f"mqtt://127.0.0.1:{port}"
        assert broker.running
        endpoint = MqttEndpoint.from_url(broker.url)
        sub = make_client(f"sub-{uuid.uuid4().hex[:8]}", persistent=False)
        pub = make_client(f"pub-{uuid.uuid4().hex[:8]}", persistent=False)
        await connect(sub, endpoint)
        await connect(pub, endpoint)
        try:
            await _round_trip(pub, sub, "trygg/v1/devices/d1/alarm", b'{"kind":"button"}')
        finally:
            await pub.disconnect()
            await sub.disconnect()
    assert not broker.running
    # SIGTERM made Mosquitto save its sessions in the data dir.
    assert (tmp_path / "data" / "mosquitto" / "mosquitto.db").is_file()
    assert broker.config_path.is_file()


@needs_mosquitto
async def test_local_broker_mosquitto_keeps_sessions_across_restart(tmp_path: Path) -> None:
    """A persistent session and its queued QoS 1 message survive a broker restart (persistence on)."""
    port = free_port()
    topic = "trygg/v1/devices/d2/alarm"
    client_id = f"gw-{uuid.uuid4().hex[:8]}"
    endpoint = MqttEndpoint.from_url(f"mqtt://127.0.0.1:{port}")
    broker = LocalBroker(tmp_path, port)
    await broker.start()
    try:
        sub = make_client(client_id, persistent=True, session_expiry_s=3600)
        subscribed = asyncio.Event()
        sub.on_subscribe = lambda *a: subscribed.set()
        await connect(sub, endpoint)
        sub.subscribe(topic, qos=1)
        await asyncio.wait_for(subscribed.wait(), 5)
        await sub.disconnect()

        pub = make_client(f"pub-{uuid.uuid4().hex[:8]}", persistent=False)
        await connect(pub, endpoint)
        pub.publish(topic, b"queued", qos=1)
        await asyncio.sleep(0.2)
        await pub.disconnect()

        await broker.stop()
        await broker.start()

        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(client: Any, t: str, p: bytes, qos: int, props: dict[str, Any]) -> int:
            await received.put(p)
            return 0

        sub2 = make_client(client_id, persistent=True, session_expiry_s=3600, on_message=on_message)
        await connect(sub2, endpoint)
        try:
            assert await asyncio.wait_for(received.get(), 5) == b"queued"
        finally:
            await sub2.disconnect()
    finally:
        await broker.stop()


async def test_local_broker_amqtt_fallback_round_trip(tmp_path: Path) -> None:
    port = free_port()
    async with LocalBroker(tmp_path, port, prefer_mosquitto=False) as broker:
        assert broker.kind == "amqtt"
        assert broker.url == f"mqtt://127.0.0.1:{port}"
        # amqtt speaks MQTT 3.1.1 only: trygg.mqtt.connect asks for MQTT 5, so connect with gmqtt directly.
        sub = gmqtt.Client(f"sub-{uuid.uuid4().hex[:8]}")
        pub = gmqtt.Client(f"pub-{uuid.uuid4().hex[:8]}")
        await asyncio.wait_for(sub.connect("127.0.0.1", port, version=MQTTv311), 5)
        await asyncio.wait_for(pub.connect("127.0.0.1", port, version=MQTTv311), 5)
        try:
            await _round_trip(pub, sub, "trygg/v1/devices/d1/alarm", b'{"kind":"fall"}')
        finally:
            await pub.disconnect()
            await sub.disconnect()
    assert not broker.running


async def test_local_broker_reports_a_taken_port(tmp_path: Path) -> None:
    """A port that is in use: start() fails at once with a clear message, whichever broker."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for prefer_mosquitto in (True, False):
            broker = LocalBroker(tmp_path, port, prefer_mosquitto=prefer_mosquitto, ready_timeout_s=5)
            with pytest.raises(RuntimeError, match="already in use"):
                await broker.start()
            assert not broker.running
    finally:
        server.close()
        await server.wait_closed()
