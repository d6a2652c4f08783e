"""The local control channel: another process presses a button on a device of a running fleet.

Request: ``{root}/sim/control/{device_id}/press`` with ``{"type": "fall", "request_id": "..."}`` (type
optional: the device's default). Answer: ``{root}/sim/control/{device_id}/pressed`` with
``{"request_id": ..., "alarm_id": ...}`` (or ``{"request_id": ..., "error": ...}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from devices import AckStatus, AlarmAck, DeviceTopic, Topics
from trygg.mqtt import MqttEndpoint, connect, make_client
from trygg.settings import Settings

log = structlog.get_logger(__name__)

FINAL_STATUSES = frozenset({AckStatus.STORED, AckStatus.REJECTED})


def press_filter(root: str) -> str:
    return f"{root}/sim/control/+/press"


def press_topic(root: str, device_id: str) -> str:
    return f"{root}/sim/control/{device_id}/press"


def pressed_topic(root: str, device_id: str) -> str:
    return f"{root}/sim/control/{device_id}/pressed"


def parse_press_topic(root: str, topic: str) -> str | None:
    """The device id of a press request topic, else None."""
    prefix, suffix = f"{root}/sim/control/", "/press"
    if topic.startswith(prefix) and topic.endswith(suffix):
        device_id = topic[len(prefix) : -len(suffix)]
        if device_id and "/" not in device_id:
            return device_id
    return None


@dataclass
class PressResult:
    alarm_id: str
    via: str  # "fleet" or "standalone"
    statuses: list[str] = field(default_factory=list)

    @property
    def stored(self) -> bool:
        return AckStatus.STORED.value in self.statuses


class ControlError(RuntimeError):
    """The fleet answered with an error (unknown alarm type and the like)."""


async def subscribe_and_wait(client: Any, topics: list[str], timeout_s: float = 5.0) -> None:
    """Subscribe QoS 1 and wait for the SUBACKs, so nothing published right after is missed."""
    loop = asyncio.get_running_loop()
    pending: dict[int, asyncio.Future[None]] = {}

    def on_subscribe(_client: Any, mid: int, qos: Any, properties: Any) -> None:
        fut = pending.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(None)

    client.on_subscribe = on_subscribe
    for topic in topics:
        fut: asyncio.Future[None] = loop.create_future()
        pending[client.subscribe(topic, qos=1)] = fut
    await asyncio.wait_for(asyncio.gather(*pending.values()), timeout_s)


async def press_via_control(
    settings: Settings,
    device_id: str,
    alarm_type: str | None = None,
    *,
    mqtt_url: str | None = None,
    answer_timeout_s: float = 2.0,
    wait: bool = True,
    timeout_s: float = 30.0,
) -> PressResult | None:
    """Ask a running fleet to press ``device_id``. None when no fleet answered within ``answer_timeout_s``.

    With ``wait``, also waits (up to ``timeout_s``) for ``stored`` or ``rejected`` on the device's ack topic,
    subscribed before the request so no ack is missed.
    """
    root = settings.topic_root
    ack_topic = Topics(root).device(device_id, DeviceTopic.ALARM_ACK)
    request_id = secrets.token_hex(8)
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    acks: list[AlarmAck] = []
    ack_seen = asyncio.Event()

    async def on_message(_client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        if topic == pressed_topic(root, device_id):
            with contextlib.suppress(ValueError):
                body = json.loads(payload)
                if isinstance(body, dict) and body.get("request_id") == request_id and not answer.done():
                    answer.set_result(body)
        elif topic == ack_topic:
            with contextlib.suppress(ValidationError):
                acks.append(AlarmAck.model_validate_json(payload))
                ack_seen.set()
        return 0

    client = make_client(f"trygg-sim-cli-{request_id}", persistent=False, on_message=on_message)
    await connect(
        client,
        MqttEndpoint.from_url(mqtt_url or settings.mqtt_url, ca_file=settings.mqtt_ca_file),
        protocol=settings.mqtt_protocol,
    )
    try:
        await subscribe_and_wait(client, [pressed_topic(root, device_id), ack_topic])
        request: dict[str, Any] = {"request_id": request_id}
        if alarm_type is not None:
            request["type"] = alarm_type
        client.publish(press_topic(root, device_id), json.dumps(request).encode(), qos=1)
        try:
            body = await asyncio.wait_for(answer, answer_timeout_s)
        except TimeoutError:
            return None
        if "error" in body:
            raise ControlError(str(body["error"]))
        result = PressResult(alarm_id=str(body["alarm_id"]), via="fleet")

        def collect() -> bool:
            result.statuses = [a.status.value for a in acks if a.alarm_id == result.alarm_id]
            return any(AckStatus(s) in FINAL_STATUSES for s in result.statuses)

        if wait:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while not collect():
                        ack_seen.clear()
                        await ack_seen.wait()
        collect()
        return result
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2.0)
