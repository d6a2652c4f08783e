"""A device's login cannot knock the gateway or another device off the broker (issue 8, point 3).

Against a real Mosquitto with the shipped layout (tests/broker.py, config/mosquitto/mosquitto.conf): the services'
listener with their own password file, the device listener with ``use_username_as_clientid``. An attacker holding
a device's credentials connects again and again as ``trygg-gateway``, ``trygg-gateway-fast`` and as another
device's id, while the real gateway runs and a real device keeps pressing: the gateway stays connected, the device
stays connected, and every alarm is stored. A control run on a broker without the binding shows the same attack
does knock the gateway off, so the test can fail.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gmqtt  # type: ignore[import-untyped,unused-ignore]
import pytest
from gmqtt import MQTTConnectError
from pydantic import SecretStr

from devices import DeviceType
from gateway.db import migrate as migrate_gateway
from gateway.provisioning import ensure_service_account, issue_device_credentials, write_broker_auth
from testing.broker import Broker
from testing.harness import make_settings, prepare_stores, running_gateway, running_receiver
from trygg.db import transaction
from trygg.secrets import new_token

ROOT = "trygg/v1"
GATEWAY_ID = "trygg-gateway"  # the default client id: what an attacker would try first
ATTACK_S = 3.0


@dataclass
class Stack:
    broker: Broker
    passwords: dict[str, str]
    gateway_user: str = "svc-gateway"
    receiver_user: str = "svc-receiver"


async def make_stack(tmp_path: Path, *, bound: bool) -> tuple[Stack, Any]:
    settings = make_settings(tmp_path, "mqtt://127.0.0.1:1")
    await prepare_stores(settings, {"dev-a": DeviceType.PENDANT, "dev-b": DeviceType.PENDANT})
    stack = Stack(broker=Broker(workdir=tmp_path / "mosquitto"), passwords={})
    auth = tmp_path / "auth"
    async with transaction(settings.gateway_database_url, migrate_gateway) as session:
        for device_id in ("dev-a", "dev-b"):
            stack.passwords[device_id] = await issue_device_credentials(session, device_id)
        for user, role in ((stack.gateway_user, "gateway"), (stack.receiver_user, "receiver")):
            stack.passwords[user] = new_token()
            await ensure_service_account(session, user, role, stack.passwords[user])
        await write_broker_auth(session, auth / "devices", auth / "services", auth / "acl", ROOT)
    if bound:  # the shipped layout: two listeners, two password files
        stack.broker.password_file, stack.broker.device_password_file = auth / "services", auth / "devices"
    else:  # the layout before issue 8: one listener, everyone in one password file
        merged = auth / "everyone"
        merged.write_text((auth / "devices").read_text() + (auth / "services").read_text())
        stack.broker.password_file = merged
        stack.broker.device_port = stack.broker.port
    stack.broker.acl_file = auth / "acl"
    settings = settings.model_copy(
        update={
            "mqtt_url": stack.broker.url,
            "gateway_client_id": GATEWAY_ID,
            "gateway_mqtt_username": stack.gateway_user,
            "gateway_mqtt_password": SecretStr(stack.passwords[stack.gateway_user]),
            "receiver_mqtt_username": stack.receiver_user,
            "receiver_mqtt_password": SecretStr(stack.passwords[stack.receiver_user]),
        }
    )
    return stack, settings


class Device:
    """A device on the device listener with its own login; counts its disconnects and collects its acks."""

    def __init__(self, device_id: str, password: str, client_id: str | None = None) -> None:
        self.device_id = device_id
        self.password = password
        self.client = gmqtt.Client(client_id or f"{device_id}-{uuid.uuid4().hex[:6]}", clean_session=True)
        self.client.set_config({"reconnect_retries": 0, "reconnect_delay": 60})
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.disconnects = 0
        self.subscribed = asyncio.Event()
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda *_: self.subscribed.set()

    async def _on_message(self, _c: Any, _t: str, payload: bytes, _q: int, _p: Any) -> int:
        self.acks.put_nowait(json.loads(payload))
        return 0

    def _on_disconnect(self, *_args: Any, **_kwargs: Any) -> None:
        self.disconnects += 1

    async def connect(self, port: int) -> None:
        self.client.set_auth_credentials(self.device_id, self.password)
        await asyncio.wait_for(self.client.connect("127.0.0.1", port, keepalive=30), 10)

    async def press(self, alarm_id: str) -> None:
        body = {"alarm_id": alarm_id, "type": "assistance", "ts": datetime.now(UTC).isoformat()}
        self.client.publish(f"{ROOT}/devices/{self.device_id}/alarm", json.dumps(body).encode(), qos=1)
        async with asyncio.timeout(10):
            while True:
                ack = await self.acks.get()
                if ack.get("alarm_id") == alarm_id and ack.get("status") == "stored":
                    return


async def attack(stack: Stack, stop: asyncio.Event) -> dict[str, int]:
    """dev-a's credentials, other identities' client ids, as fast as the broker answers, until ``stop``."""
    tried: dict[str, int] = {}
    targets = [GATEWAY_ID, f"{GATEWAY_ID}-fast", "dev-b"]
    while not stop.is_set():
        for client_id in targets:
            intruder = gmqtt.Client(client_id, clean_session=True)
            intruder.set_config({"reconnect_retries": 0, "reconnect_delay": 60})
            intruder.set_auth_credentials("dev-a", stack.passwords["dev-a"])
            for port in {stack.broker.device_port, stack.broker.port}:
                try:
                    await asyncio.wait_for(intruder.connect("127.0.0.1", port, keepalive=30), 5)
                except (MQTTConnectError, OSError, TimeoutError):
                    continue
                tried[client_id] = tried.get(client_id, 0) + 1
                await asyncio.sleep(0.02)
                await intruder.disconnect()
    return tried


async def run_attack(tmp_path: Path, *, bound: bool) -> tuple[int, int, int]:
    """(gateway disconnects, dev-b disconnects, dev-b alarms stored) while the attack runs."""
    stack, settings = await make_stack(tmp_path, bound=bound)
    await asyncio.to_thread(stack.broker.start)
    try:
        async with running_receiver(settings), running_gateway(settings) as gw:
            drops = {"n": 0}
            for connection in (gw.core.mqtt, gw.core.fast_mqtt):
                assert connection is not None
                client = connection._client  # the gmqtt client under the MqttConnection: every drop is counted
                original = client.on_disconnect

                def counted(*args: Any, _orig: Any = original, **kwargs: Any) -> Any:
                    drops["n"] += 1
                    return _orig(*args, **kwargs)

                client.on_disconnect = counted
            victim = Device("dev-b", stack.passwords["dev-b"])
            await victim.connect(stack.broker.device_port)
            victim.client.subscribe(f"{ROOT}/devices/dev-b/alarm/ack", qos=1)
            await asyncio.wait_for(victim.subscribed.wait(), 10)
            stop = asyncio.Event()
            attacker = asyncio.create_task(attack(stack, stop))
            stored = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + ATTACK_S
            try:
                while loop.time() < deadline and victim.disconnects == 0:
                    try:
                        await victim.press(f"b-{stored}")
                    except TimeoutError:
                        break
                    stored += 1
                    await asyncio.sleep(0.05)
            finally:
                stop.set()
                tried = await attacker
            assert tried, "the attacker never got in with its own credentials"
            gateway_drops = drops["n"]
            victim_drops = victim.disconnects
            if victim.client.is_connected:
                await victim.client.disconnect()
            return gateway_drops, victim_drops, stored
    finally:
        await asyncio.to_thread(stack.broker.stop)


async def test_device_login_cannot_take_over_other_sessions(tmp_path: Path) -> None:
    gateway_drops, victim_drops, stored = await run_attack(tmp_path, bound=True)
    assert gateway_drops == 0, "the gateway was knocked off the broker"
    assert victim_drops == 0, "dev-b was knocked off the broker"
    assert stored >= 10, f"only {stored} of dev-b's alarms were stored during the attack"


async def test_device_credentials_are_refused_on_the_service_listener(tmp_path: Path) -> None:
    stack, _ = await make_stack(tmp_path, bound=True)
    await asyncio.to_thread(stack.broker.start)
    try:
        intruder = Device("dev-a", stack.passwords["dev-a"], client_id=GATEWAY_ID)
        with pytest.raises(MQTTConnectError):
            await intruder.connect(stack.broker.port)
        service = gmqtt.Client("svc-probe", clean_session=True)
        service.set_config({"reconnect_retries": 0, "reconnect_delay": 60})
        service.set_auth_credentials(stack.gateway_user, stack.passwords[stack.gateway_user])
        with pytest.raises(MQTTConnectError):  # and the reverse: a service login is no device login
            await asyncio.wait_for(service.connect("127.0.0.1", stack.broker.device_port, keepalive=30), 10)
    finally:
        await asyncio.to_thread(stack.broker.stop)


async def test_control_without_binding_the_attack_works(tmp_path: Path) -> None:
    """The layout before issue 8 (one listener, one password file): the same attack drops the gateway."""
    gateway_drops, _, _ = await run_attack(tmp_path, bound=False)
    assert gateway_drops > 0
