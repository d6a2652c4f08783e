"""The console shows times in the configured ``timezone`` and takes its lists from the server, not from copies.

A receiver configured for Pacific/Kiritimati (UTC+14) and a browser in Pacific/Pago_Pago (UTC-11): 25 hours apart,
so their calendar dates always differ and their clocks by an hour. Every time and date on the pages is the
receiver's; open states, technical alarm types and task types come from /console/config.json, which serves
Python's lists.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext
from pydantic import SecretStr

from alarm_receiver import queue
from devices.types import TASK_TYPES, TECHNICAL_ALARM_TYPES
from testing.broker import Broker
from testing.harness import create_user, make_settings, prepare_stores, running_receiver
from tests.console_fixtures import PASSWORD, PageErrors, chromium, log_in, open_page
from trygg.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

ZONE = "Pacific/Kiritimati"
BROWSER_ZONE = "Pacific/Pago_Pago"
INTAKE_TOKEN = secrets.token_urlsafe(32)  # the services refuse a short or published secret
STORED_AT = datetime(2026, 1, 15, 2, 30, 0, tzinfo=UTC)  # 2026-01-15 16:30:00 there, 2026-01-14 15:30:00 here


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserContext]:
    async with chromium(tmp_path_factory.mktemp("chromium-profile"), timezone_id=BROWSER_ZONE) as ctx:
        yield ctx


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def far_east(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Settings]:
    tmp = tmp_path_factory.mktemp("kiritimati")
    broker = Broker(workdir=tmp / "mosquitto")
    broker.start()
    settings = make_settings(tmp, broker.url, timezone=ZONE, intake_token=SecretStr(INTAKE_TOKEN))
    try:
        await prepare_stores(settings)
        await create_user(settings, "op", "operator", PASSWORD)
        await create_user(settings, "admin", "admin", PASSWORD)
        async with running_receiver(settings):
            items = [
                {
                    "kind": "alarm",
                    "device_id": device_id,
                    "alarm_id": f"a-{type_}",
                    "type": type_,
                    "priority": 5,
                    "device_ts": STORED_AT.isoformat(),
                    "stored_at": STORED_AT.isoformat(),
                }
                for device_id, type_ in (("p1", "fall"), ("p2", "low_battery"), ("p3", "checkin_due"))
            ]
            async with httpx.AsyncClient(base_url=settings.receiver_url, timeout=10) as http:
                r = await http.post(
                    "/api/v1/intake", json={"items": items}, headers={"Authorization": f"Bearer {INTAKE_TOKEN}"}
                )
                assert r.status_code == 200, r.text
            yield settings
    finally:
        broker.stop()


async def test_config_serves_the_settings_zone_and_pythons_lists(far_east: Settings) -> None:
    async with httpx.AsyncClient(base_url=far_east.receiver_url, timeout=10) as http:
        cfg = (await http.get("/console/config.json")).json()
    assert cfg["timezone"] == ZONE
    assert cfg["open_states"] == [s.value for s in queue.OPEN_STATES]
    assert set(cfg["technical_types"]) == {t.value for t in TECHNICAL_ALARM_TYPES}
    assert set(cfg["task_types"]) == {t.value for t in TASK_TYPES}


async def test_queue_shows_the_settings_zone_and_the_servers_kinds(far_east: Settings, browser: BrowserContext) -> None:
    page = await open_page(browser, far_east.receiver_url)
    errors = PageErrors(page)
    failed: list[str] = []  # no gateway runs here: the console's look for ringing calls (/gw/...) gets 503
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    await log_in(page, far_east.receiver_url, "op")
    await page.wait_for_selector("#alarm-1")
    times = await page.eval_on_selector_all(".row .c-age small", "els => els.map(e => e.textContent)")
    assert times == ["16:30:00"] * 3, times  # the receiver's wall clock, not the browser's 15:30:00
    kinds = {
        await page.get_attribute(f"li.row[data-type='{type_}']", "class") or "": kind
        for type_, kind in (("fall", "alarm"), ("low_battery", "technical"), ("checkin_due", "task"))
    }
    for classes, kind in kinds.items():
        assert f"kind-{kind}" in classes.split(), (kind, classes)
    assert all("/gw/" in url for url in failed), failed
    assert [m for m in errors.messages if not m.startswith("Failed to load resource")] == []
    await page.goto(f"{far_east.receiver_url}/console/#/alarm/1")
    await page.wait_for_selector("dd:text('2026-01-15 16:30:00')")  # stored: the receiver's date and time
    await page.close()


async def test_dates_are_the_settings_zones_dates(far_east: Settings, browser: BrowserContext) -> None:
    """The overview's night and the log's period follow the receiver's calendar, not the browser's."""
    page = await open_page(browser, far_east.receiver_url)
    await log_in(page, far_east.receiver_url, "op")
    before = datetime.now(ZoneInfo(ZONE))
    await page.goto(f"{far_east.receiver_url}/console/#/overview")
    night = await page.locator("#night-date").get_attribute("max")
    after = datetime.now(ZoneInfo(ZONE))
    assert night in {before.date().isoformat(), after.date().isoformat()}
    await page.close()

    page = await open_page(browser, far_east.receiver_url)
    await log_in(page, far_east.receiver_url, "admin")
    start = (datetime.now(ZoneInfo(ZONE)) - timedelta(days=7)).date().isoformat()
    await page.goto(f"{far_east.receiver_url}/console/#/log")
    assert await page.locator("#log-since").get_attribute("value") == start
    assert await page.locator("#log-until").get_attribute("value") == datetime.now(ZoneInfo(ZONE)).date().isoformat()
    await page.close()
