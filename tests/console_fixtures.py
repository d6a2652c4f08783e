"""Fixtures for the console's browser tests: the whole system and a headless Chromium (docs/console.md).

The system: a real Mosquitto, the receiver and the gateway (all features, HTTP on) on free loopback ports,
WebRTC gathering on 127.0.0.1 only, a user for every role, a simulated pendant and a simulated camera.
The browser: Debian's Chromium through Playwright, a fresh profile, the flags of docs/console.md (no DNS, no
mDNS candidates, nothing outside 127.0.0.1). Module scope: one system and one browser per test module.
Import in a test module with ``from tests.console_fixtures import ...  # noqa: F401``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright

from alarm_receiver.service import Receiver
from devices import DeviceType
from firmware_sim.camera import SimCamera
from firmware_sim.device import SimDevice
from gateway.checkin.feature import CheckinFeature
from gateway.checkin.media import CameraRelayFeature
from gateway.registry import add_device
from gateway.service import Gateway
from testing.broker import Broker
from testing.harness import create_user, make_settings, prepare_stores, running_gateway, running_receiver
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings
from trygg.webrtc import use_host_addresses

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--autoplay-policy=no-user-gesture-required",
]
PASSWORD = "correct-horse-1"
USERS = {
    "op": "operator",
    "pat": "patrol",
    "pat2": "patrol",
    "tech": "technician",
    "case": "case_officer",
    "admin": "admin",
}
PENDANT = "pend1"
CAMERA = "cam1"
# docs/screenshots/ is written only on request (TRYGG_SCREENSHOTS=1 ./scripts/test tests/test_console_pages.py ...),
# so that a test run leaves the working tree clean; otherwise the pictures go to a temporary folder.
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("TRYGG_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "trygg-screenshots"
)


@dataclass
class ConsoleSystem:
    settings: Settings
    receiver: Receiver
    gateway: Gateway
    pendant: SimDevice
    camera: SimCamera
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.settings.receiver_url

    @property
    def checkin(self) -> CheckinFeature:
        return next(f for f in self.gateway.features if isinstance(f, CheckinFeature))

    @property
    def relay(self) -> CameraRelayFeature:
        return next(f for f in self.gateway.features if isinstance(f, CameraRelayFeature))

    async def token(self, user: str) -> str:
        if user not in self.tokens:
            async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
                r = await http.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
                r.raise_for_status()
                self.tokens[user] = r.json()["access_token"]
        return self.tokens[user]

    async def http(self, user: str) -> httpx.AsyncClient:
        """A client of the receiver (and of the gateway through /gw) logged in as ``user``; close it."""
        return httpx.AsyncClient(
            base_url=self.base, timeout=10, headers={"Authorization": f"Bearer {await self.token(user)}"}
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ConsoleSystem]:
    tmp = tmp_path_factory.mktemp("console")
    broker = Broker(workdir=tmp / "mosquitto")
    broker.start()
    settings = make_settings(tmp, broker.url, webrtc_host_addresses=["127.0.0.1"], checkin_start_timeout_s=3600)
    try:
        await prepare_stores(settings)
        async with engine_scope(settings.gateway_database_url) as engine:
            async with session_factory(engine).begin() as session:
                await add_device(
                    session, PENDANT, DeviceType.PENDANT, client_ref="astrid", location="Storgatan 1, lgh 1102"
                )
                await add_device(session, CAMERA, DeviceType.CAMERA, client_ref="bertil", location="Ågatan 5")
        for user, role in USERS.items():
            await create_user(settings, user, role, PASSWORD)
        async with running_receiver(settings) as receiver, running_gateway(settings, http=True) as gw:
            pendant = SimDevice(PENDANT, DeviceType.PENDANT, settings, heartbeat_interval_s=30, battery_pct=87)
            camera = SimCamera(CAMERA, settings, fps=10, size=(320, 240))
            await pendant.start()
            await camera.start()
            system = ConsoleSystem(settings, receiver, gw, pendant, camera)
            await system.relay.wait_camera_state(CAMERA, "idle", 10)
            try:
                yield system
            finally:
                await camera.stop()
                await pendant.stop()
    finally:
        use_host_addresses([])
        broker.stop()


@asynccontextmanager
async def chromium(
    profile: Path, timezone_id: str = "Europe/Stockholm", *, locale: str = "sv-SE"
) -> AsyncIterator[BrowserContext]:
    """Debian's Chromium with the flags of docs/console.md, a fresh profile, its clock in ``timezone_id`` and the
    browser locale given (the console's own language does not depend on it)."""
    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 800},
            locale=locale,
            timezone_id=timezone_id,
        )
        try:
            yield ctx
        finally:
            await ctx.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserContext]:
    async with chromium(tmp_path_factory.mktemp("chromium-profile")) as ctx:
        yield ctx


class PageErrors:
    """Console errors and CSP violations seen by a page (a test asserts there are none)."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", lambda m: self.messages.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))

    def csp(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m]


async def open_page(ctx: BrowserContext, base: str, *, viewport: dict[str, int] | None = None) -> Page:
    page = await ctx.new_page()
    if viewport:
        await page.set_viewport_size(viewport)  # type: ignore[arg-type]
    page.set_default_timeout(10_000)
    return page


async def log_in(page: Page, base: str, user: str, password: str = PASSWORD, *, lang: str = "sv") -> None:
    """Log in through the form; waits for the role's landing page."""
    await page.goto(f"{base}/console/#/login")
    await page.evaluate("l => localStorage.setItem('trygg.lang', l)", lang)
    await page.wait_for_selector("#login-form")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_function("() => location.hash !== '#/login' && document.body.dataset.page !== 'login'")


async def inject(system: ConsoleSystem, alarm_id: str, **fields: object) -> int:
    """An alarm as the gateway forwards it (``POST /api/v1/intake``); returns its id in the queue. Each from a device
    of its own unless ``device_id`` is given: a device's alarm of the same type as one of its open ones would be
    collapsed into that item (issue 8), and the callers want an item each."""
    now = datetime.now(UTC)
    item: dict[str, object] = {
        "kind": "alarm",
        "device_id": f"inj-{alarm_id}"[:64],
        "alarm_id": alarm_id,
        "type": "assistance",
        "priority": 7,
        "device_ts": now.isoformat(),
        "stored_at": now.isoformat(),
        "details": {"client_ref": "astrid"},
    }
    item.update(fields)
    token = system.settings.intake_token.get_secret_value()
    async with httpx.AsyncClient(base_url=system.base, timeout=10) as http:
        r = await http.post("/api/v1/intake", json={"items": [item]}, headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
    async with await system.http("op") as http:
        rows = (await http.get("/api/v1/alarms", params={"all_states": "true", "limit": 5000})).json()
    return int(next(a["id"] for a in rows if a["alarm_id"] == alarm_id and a["device_id"] == item["device_id"]))


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


__all__ = [
    "CAMERA",
    "PASSWORD",
    "PENDANT",
    "ConsoleSystem",
    "PageErrors",
    "browser",
    "chromium",
    "console_system",
    "inject",
    "log_in",
    "open_page",
    "screenshot",
]
