"""Running pieces of Trygg for tests: real broker, real services on free ports, real HTTP and MQTT clients."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from alarm_receiver.app import create_app as create_receiver_app
from alarm_receiver.db import migrate as migrate_receiver
from devices import DeviceType
from gateway.app import create_app as create_gateway_app
from gateway.db import migrate as migrate_gateway
from gateway.registry import add_device
from gateway.service import Gateway
from testing.broker import free_port, wait_port
from testing.sse import feed_events
from trygg import mqtt
from trygg.db import engine_scope, session_factory
from trygg.serve import service_server, serving
from trygg.settings import Settings


def make_settings(tmp_path: Path, mqtt_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "mqtt_url": mqtt_url,
        "gateway_database_url": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        "receiver_database_url": f"sqlite+aiosqlite:///{tmp_path}/receiver.db",
        "gateway_client_id": f"gw-{os.urandom(3).hex()}",
        "receiver_client_id": f"rx-{os.urandom(3).hex()}",
        "gateway_http_port": free_port(),
        "receiver_http_port": free_port(),
        "sim_outbox_dir": tmp_path / "outbox",
        "forward_backoff_max_s": 1.0,
        # Random secrets per test: the services refuse published defaults and short ones.
        "intake_token": secrets.token_urlsafe(32),
        "metrics_token": secrets.token_urlsafe(32),
    }
    values["receiver_url"] = f"http://127.0.0.1:{values['receiver_http_port']}"
    values["gateway_url"] = f"http://127.0.0.1:{values['gateway_http_port']}"
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as TRYGG_* variables, for a service started as its own process."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        # complex settings (lists, dicts) are JSON in the environment
        env[f"TRYGG_{name.upper()}"] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    env["TRYGG_CONFIG_FILE"] = "/nonexistent"
    return env


async def prepare_stores(settings: Settings, devices: dict[str, DeviceType] | None = None) -> None:
    async with engine_scope(settings.gateway_database_url) as engine:
        await migrate_gateway(engine)
        async with session_factory(engine).begin() as session:
            for device_id, device_type in (devices or {}).items():
                await add_device(session, device_id, device_type, exist_ok=True)
    async with engine_scope(settings.receiver_database_url) as engine:
        await migrate_receiver(engine)


async def create_user(settings: Settings, username: str, role: str, password: str = "correct-horse-1") -> None:
    from alarm_receiver.auth import Role
    from alarm_receiver.auth import create_user as create

    async with engine_scope(settings.receiver_database_url) as engine:
        await migrate_receiver(engine)
        async with session_factory(engine).begin() as session:
            await create(session, username, password, Role(role))


@asynccontextmanager
async def running_receiver(settings: Settings) -> AsyncIterator[Any]:
    app = create_receiver_app(settings)
    srv = service_server(app, settings, "receiver", handle_signals=False)
    async with serving(app, settings.receiver_http_host, settings.receiver_http_port, srv=srv):
        yield app.state.receiver


@asynccontextmanager
async def running_gateway(settings: Settings, *, http: bool = False) -> AsyncIterator[Gateway]:
    """The gateway in this process; with ``http`` also its health/metrics server (whose lifespan runs it)."""
    gw = Gateway(settings)
    if not http:
        await gw.start()
        try:
            yield gw
        finally:
            await gw.stop()
        return
    app = create_gateway_app(settings, gw)
    srv = service_server(app, settings, "gateway", handle_signals=False)
    async with serving(app, settings.gateway_http_host, settings.gateway_http_port, srv=srv):
        yield gw


class ServiceProcess:
    """``trygg <service>`` (``gateway`` or ``receiver``) as its own process, so a test can SIGKILL it."""

    def __init__(self, settings: Settings, log_path: Path, service: str = "gateway") -> None:
        self.settings = settings
        self.log_path = log_path
        self.service = service
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        s = self.settings
        return s.gateway_http_port if self.service == "gateway" else s.receiver_http_port

    def spawn(self) -> None:
        """Start the process without waiting for it (``wait_ready`` waits)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trygg_cli", self.service],
                env=settings_env(self.settings),
                stdout=log,
                stderr=log,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        wait_port(self.port, timeout=timeout)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class GatewayProcess(ServiceProcess):
    """``trygg gateway`` as its own process, so a test can SIGKILL it."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(settings, log_path, "gateway")


class Api:
    """The receiver's HTTP API as a logged-in user."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.receiver_url
        self.http = httpx.AsyncClient(base_url=self.base, timeout=10)
        self.token: str | None = None

    async def login(self, username: str, password: str = "correct-horse-1") -> None:
        r = await self.http.post("/api/v1/auth/token", json={"username": username, "password": password})
        r.raise_for_status()
        self.token = r.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    async def alarms(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.http.get("/api/v1/alarms", params=params)
        r.raise_for_status()
        result: list[dict[str, Any]] = r.json()
        return result

    async def act(self, pk: int, action: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(f"/api/v1/alarms/{pk}/{action}", json=body or {})

    async def close(self) -> None:
        await self.http.aclose()


class LiveFeedReader:
    """Reads the receiver's SSE feed into a queue of (event, data)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def __aenter__(self) -> LiveFeedReader:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _read(self) -> None:
        async for event, data in feed_events(self.api.http):
            if event == "hello":
                self.ready.set()
            else:
                await self.events.put((event, json.loads(data)))

    async def next_alarm(self, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """The next alarm event whose fields equal ``match``."""
        async with asyncio.timeout(timeout):
            while True:
                event, data = await self.events.get()
                if event == "alarm" and all(data.get(k) == v for k, v in match.items()):
                    return data


class RawDevice:
    """A bare MQTT client speaking as one device: publishes what a test gives it, collects its acks."""

    def __init__(self, settings: Settings, device_id: str) -> None:
        self.settings = settings
        self.device_id = device_id
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.client: Any = None
        self._subscribed = asyncio.Event()

    def topic(self, kind: str) -> str:
        return f"{self.settings.topic_root}/devices/{self.device_id}/{kind}"

    async def __aenter__(self) -> RawDevice:
        async def on_message(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
            await self.acks.put(json.loads(payload))
            return 0

        def on_subscribe(client: Any, mid: Any, qos: Any, props: Any) -> None:
            self._subscribed.set()

        self.client = mqtt.make_client(
            f"dev-{self.device_id}-{os.urandom(2).hex()}", persistent=False, on_message=on_message
        )
        self.client.on_subscribe = on_subscribe
        await mqtt.connect(self.client, mqtt.MqttEndpoint.from_url(self.settings.mqtt_url))
        self.client.subscribe(self.topic("alarm/ack"), qos=1)
        await asyncio.wait_for(self._subscribed.wait(), 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with suppress(Exception):
            await self.client.disconnect()

    def publish(self, kind: str, payload: bytes | dict[str, Any], qos: int = 1) -> None:
        body = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.client.publish(self.topic(kind), body, qos=qos)

    async def next_ack(self, timeout: float = 10, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                ack = await self.acks.get()
                if all(ack.get(k) == v for k, v in match.items()):
                    return ack
