"""The gateway's extension points: a feature's topic handler, gateway-raised alarms and their resolution on
the durable path, and the gateway API's login check against the receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends

from devices import AlarmType, DeviceTopic, DeviceType
from gateway.api.deps import ApiUser, require_roles
from gateway.features import Subscription
from gateway.intake import Outcome
from gateway.port import GatewayPort
from gateway.service import Gateway
from testing.broker import Broker
from testing.harness import Api, LiveFeedReader, RawDevice, create_user, make_settings, prepare_stores, running_receiver
from trygg.serve import serving


class EchoFeature:
    """Raises a technical alarm when a heartbeat says so, and resolves it when the next one says so."""

    name = "echo"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        self.seen: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()

    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {DeviceTopic.HEARTBEAT: Subscription(self._heartbeat, qos=0)}

    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/echo/whoami")
        async def whoami(user: Annotated[ApiUser, Depends(require_roles("technician"))]) -> dict[str, str]:
            return {"username": user.username, "role": user.role}

        return r

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def on_connected(self) -> None:
        pass

    async def _heartbeat(self, device_id: str, payload: bytes) -> None:
        body = json.loads(payload)
        if body.get("say") == "offline":
            outcome = await self.port.raise_alarm(device_id, "tech-1", AlarmType.DEVICE_OFFLINE, text="silent")
        else:
            outcome = await self.port.resolve_alarm(device_id, "tech-1", "device back online")
        await self.seen.put((device_id, {"outcome": outcome}))


async def test_feature_raises_and_resolves_through_the_durable_path(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    await create_user(s, "tech", "technician")
    gw = Gateway(s, features=lambda port: [EchoFeature(port)])
    feature = gw.feature(EchoFeature)
    from gateway.app import create_app

    app = create_app(s, gw, routers=[feature.router()])
    async with running_receiver(s), serving(app, s.gateway_http_host, s.gateway_http_port):
        op = Api(s)
        await op.login("op")
        async with LiveFeedReader(op) as feed, RawDevice(s, "p1") as device:
            device.publish("heartbeat", {"say": "offline"}, qos=0)
            assert (await asyncio.wait_for(feature.seen.get(), 10))[1]["outcome"] is Outcome.STORED
            raised = await feed.next_alarm(alarm_id="tech-1", state="new")
            assert raised["type"] == "device_offline" and raised["priority"] == 4
            device.publish("heartbeat", {"say": "online"}, qos=0)
            assert (await asyncio.wait_for(feature.seen.get(), 10))[1]["outcome"] is Outcome.RESOLVED
            resolved = await feed.next_alarm(alarm_id="tech-1", state="resolved")
            assert resolved["outcome"] == "device back online"
            device.publish("heartbeat", {"say": "online"}, qos=0)
            assert (await asyncio.wait_for(feature.seen.get(), 10))[1]["outcome"] is Outcome.RESOLVE_DUPLICATE

        base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/echo/whoami"
        tech = Api(s)
        await tech.login("tech")
        async with httpx.AsyncClient() as http:
            assert (await http.get(base)).status_code == 401
            assert (await http.get(base, headers={"Authorization": "Bearer wrong"})).status_code == 401
            assert (await http.get(base, headers={"Authorization": f"Bearer {op.token}"})).status_code == 403
            ok = await http.get(base, headers={"Authorization": f"Bearer {tech.token}"})
            assert ok.status_code == 200 and ok.json() == {"username": "tech", "role": "technician"}
        await op.close()
        await tech.close()
