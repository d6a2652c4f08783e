"""The person behind the alarm in the console (issue 10), in Chromium: a pressed alarm shows the client's name and
address in the queue within 2 s; the alarm detail's client panel (tel: links, health notes only on a click, and
logged); the assign dialog proposes the patrol on shift for the area first; the patrol view's geo: link and unlock
button open the simulated lock, the door opening marks the alarm on site, a jammed lock shows the fallback at once;
the technician's page never shows health notes; nothing untranslated. And the 500-item queue, each with its client
(figures printed for docs/benchmarks.md)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext

from devices import DeviceType
from firmware_sim.device import SimDevice
from firmware_sim.lock import SimLock
from gateway.registry import add_device
from testing.broker import Broker
from testing.harness import create_user, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from tests import console_fixtures
from tests.clients_support import HEALTH, KEY_SAFE_CODE, client_body
from tests.console_fixtures import PASSWORD, PageErrors, log_in, open_page, screenshot
from trygg.audit.anchor import generate_key
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings

browser = console_fixtures.browser
pytestmark = pytest.mark.asyncio(loop_scope="module")

PENDANT, LOCK = "pend-c1", "lock-c1"
USERS = {"op": "operator", "pat": "patrol", "pat2": "patrol", "tech": "technician", "case": "case_officer"}
CODE = re.compile(r"\b(?:alarm|client|lock|routing|auth|http|request)\.[a-z_]+\b")


@dataclass
class System:
    settings: Settings
    pendant: SimDevice
    lock: SimLock
    client_id: int

    async def http(self, user: str) -> httpx.AsyncClient:
        async with httpx.AsyncClient(base_url=self.settings.receiver_url, timeout=10) as http:
            r = await http.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
            r.raise_for_status()
            token = r.json()["access_token"]
        return httpx.AsyncClient(
            base_url=self.settings.receiver_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[System]:
    tmp = tmp_path_factory.mktemp("clients-console")
    broker = Broker(workdir=tmp / "mosquitto")
    broker.start()
    key = tmp / "grant.pem"
    public = generate_key(key)
    s = make_settings(tmp, broker.url, lock_grant_signing_key_file=key, lock_grant_public_keys=[public])
    try:
        await prepare_stores(s)
        async with engine_scope(s.gateway_database_url) as engine, session_factory(engine).begin() as session:
            await add_device(session, PENDANT, DeviceType.PENDANT, client_ref="c-100")
            await add_device(session, LOCK, DeviceType.LOCK, client_ref="c-100")
        for user, role in USERS.items():
            await create_user(s, user, role, PASSWORD)
        async with running_receiver(s), running_gateway(s, http=True):
            pendant = SimDevice(PENDANT, DeviceType.PENDANT, s, heartbeat_interval_s=30)
            lock = SimLock(LOCK, s)
            await pendant.start()
            await lock.start()
            sys_ = System(s, pendant, lock, 0)
            async with await sys_.http("case") as case:
                for code, name in (("norr", "Ekby norra"), ("syd", "Ekby södra")):
                    (await case.put(f"/api/v1/areas/{code}", json={"name": name})).raise_for_status()
                made = await case.post("/api/v1/clients", json=client_body())
                made.raise_for_status()
                sys_.client_id = made.json()["id"]
                for device_id, kind in ((PENDANT, "device"), (LOCK, "lock")):
                    r = await case.post(
                        f"/api/v1/clients/{sys_.client_id}/devices", json={"device_id": device_id, "kind": kind}
                    )
                    r.raise_for_status()
            try:
                yield sys_
            finally:
                await lock.stop()
                await pendant.stop()
    finally:
        broker.stop()


def untranslated(text: str) -> list[str]:
    return CODE.findall(text)


async def test_client_in_queue_detail_assign_and_patrol_unlock(system: System, browser: BrowserContext) -> None:
    s = system
    async with await s.http("pat") as pat_http:
        (await pat_http.post("/api/v1/roster/sign-on", json={"areas": ["norr"]})).raise_for_status()
    async with await s.http("pat2") as pat2_http:
        (await pat2_http.post("/api/v1/roster/sign-on", json={"areas": ["syd"]})).raise_for_status()

    op = await open_page(browser, s.settings.receiver_url)
    errors = PageErrors(op)
    await log_in(op, s.settings.receiver_url, "op")
    await op.wait_for_selector("#live.on")
    t0 = time.monotonic()
    alarm_id = await s.pendant.press("fall")
    row = op.locator("#queue li.row", has_text="Astrid Lindqvist")
    await row.wait_for(timeout=10_000)
    seen_s = time.monotonic() - t0
    assert "Björkvägen 12, Ekby" in await row.inner_text()
    print(f"\nCLIENT-IN-QUEUE press -> row with name and address: {seen_s * 1000:.0f} ms")
    assert seen_s < 2.0, seen_s  # the bound: within 2 s of the press
    pk = int(await row.get_attribute("data-id") or 0)

    # detail: the client panel; health notes only on a click, which is logged
    await op.goto(f"{s.settings.receiver_url}/console/#/alarm/{pk}")
    panel = op.locator("#client-panel")
    await panel.wait_for()
    assert await op.locator("#call-list a.tel").first.get_attribute("href") == "tel:+46701234567"
    assert HEALTH not in await panel.inner_text()
    assert await op.locator("#key-safe").count() == 1 and KEY_SAFE_CODE not in await panel.inner_text()
    await op.click("#client-protected")
    await op.wait_for_selector("#key-safe-code")
    assert HEALTH in await op.locator("#client-health").inner_text()
    assert PENDANT in await op.locator(".detail").inner_text()  # the device is in the detail
    assert not untranslated(await op.locator("main").inner_text())

    # assign: the patrol on shift for the client's area first
    await op.click("#d-ack")
    await op.wait_for_selector("#detail-state[data-state='acknowledged']")
    await op.click("#d-assign")
    await op.wait_for_selector("#dialog select option", state="attached")
    options = await op.eval_on_selector_all("#dialog select option", "els => els.map(e => [e.value, e.textContent])")
    assert options[0][0] == "pat" and "på pass i området" in options[0][1], options
    await op.select_option("#dialog select", "pat")
    await op.click("#dialog button[type=submit]")
    await op.wait_for_selector("#detail-state[data-state='assigned']")

    # the patrol: client, geo: link, unlock; the door opens -> on site
    pat = await open_page(browser, s.settings.receiver_url)
    pat_errors = PageErrors(pat)
    await log_in(pat, s.settings.receiver_url, "pat")
    await pat.wait_for_selector(f"#task-{pk} #client-geo")
    assert (await pat.get_attribute(f"#task-{pk} #client-geo", "href") or "").startswith("geo:59.3,18.1?q=")
    await pat.click(f"#unlock-{pk}")
    await eventually(lambda: bool(s.lock.commands), 10)
    assert s.lock.open_door()
    await pat.wait_for_selector(f"#task-{pk}[data-state='on_site']", timeout=10_000)
    # jammed: the fallback at once, with the key safe's code
    s.lock.close_door()
    assert s.lock.jam()
    await pat.wait_for_selector(f"#task-{pk} #lock-fallback", timeout=10_000)
    assert KEY_SAFE_CODE in await pat.locator(f"#task-{pk} #key-safe-code").inner_text()
    assert not untranslated(await pat.locator("main").inner_text())
    await screenshot(pat, "patrol-client")

    # the supervision log has the views of protected fields, with the alarm
    async with await s.http("case") as case:
        log = (await case.get(f"/api/v1/clients/{s.client_id}/log")).json()
    views = {(e["actor"], e["details"].get("alarm")) for e in log if e["action"] == "client.protected_viewed"}
    assert ("op", pk) in views and ("pat", pk) in views
    assert {"lock.unlock_sent", "lock.state"} <= {e["action"] for e in log}

    # the technician's client page: address and devices, no health notes
    tech = await open_page(browser, s.settings.receiver_url)
    await log_in(tech, s.settings.receiver_url, "tech")
    await tech.goto(f"{s.settings.receiver_url}/console/#/client/{s.client_id}")
    await tech.wait_for_selector("#client-devices li")
    text = await tech.locator("main").inner_text()
    assert "Björkvägen 12" in text and HEALTH not in text and "Astrid" not in text
    assert not errors.csp() and not pat_errors.csp(), errors.messages + pat_errors.messages
    assert alarm_id
    for page in (op, pat, tech):
        await page.close()


async def test_queue_with_500_open_items_each_with_its_client(system: System, browser: BrowserContext) -> None:
    """The same load as tests/test_console_queue.py's 500-item test, every item with a client (80 clients)."""
    s = system
    now = datetime.now(UTC)
    async with await s.http("case") as case:
        ids = []
        for n in range(80):
            body = client_body(f"load-{n}", name=f"Brukare {n:02d} Ekbysson", street=f"Lastgatan {n}", contacts=[])
            r = await case.post("/api/v1/clients", json=body)
            r.raise_for_status()
            ids.append(r.json()["id"])
        for d in range(50):
            (
                await case.post(f"/api/v1/clients/{ids[d % 80]}/devices", json={"device_id": f"load{d:03d}"})
            ).raise_for_status()
    items: list[dict[str, Any]] = [
        {
            "kind": "alarm",
            "device_id": f"load{i:03d}",  # a device each: one device's alarms of one type would be one item
            "alarm_id": f"load-{i}",
            "type": ("assistance", "fall", "device_offline", "low_battery", "checkin_due")[i % 5],
            "priority": i % 10,
            "device_ts": (now - timedelta(seconds=600 - i)).isoformat(),
            "stored_at": (now - timedelta(seconds=600 - i)).isoformat(),
            "details": {"client_ref": f"load-{i % 80}", "text": f"load item {i}"},
        }
        for i in range(500)
    ]
    assert s.settings.intake_token is not None
    token = s.settings.intake_token.get_secret_value()
    async with httpx.AsyncClient(base_url=s.settings.receiver_url, timeout=60) as http:
        r = await http.post("/api/v1/intake", json={"items": items}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    async with await s.http("op") as op_http:
        opened = (await op_http.get("/api/v1/alarms", params={"limit": 5000})).json()
    n_open = len(opened)
    assert n_open >= 500 and all(a["client_name"] for a in opened if a["alarm_id"].startswith("load-"))

    page = await open_page(browser, s.settings.receiver_url)
    await log_in(page, s.settings.receiver_url, "op")
    await page.wait_for_function(f"() => window.__perf && window.__perf.rendered >= {n_open}")
    await page.wait_for_selector("#live.on")
    render_ms = await page.evaluate("() => window.__perf.renderMs")
    assert await page.locator("#queue li.row", has_text="Brukare 01 Ekbysson").count() > 0
    timings = []
    for i in range(5):
        before = await page.evaluate("() => window.__perf.updates.length")
        one = dict(items[0], alarm_id=f"live-{i}", priority=8, stored_at=datetime.now(UTC).isoformat())
        async with httpx.AsyncClient(base_url=s.settings.receiver_url, timeout=30) as http:
            r = await http.post("/api/v1/intake", json={"items": [one]}, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
        await page.wait_for_function(f"() => window.__perf.updates.length > {before}")
        timings.append(await page.evaluate("() => window.__perf.lastUpdateMs"))
    print(f"\nCONSOLE-BENCH-CLIENTS open={n_open + 5} render_ms={render_ms:.1f} update_ms={sorted(timings)}")
    # Loose bounds (a shared 2-core machine): the figures against today's, measured in the same run, are in
    # docs/benchmarks.md ("Console: 500 open items, each with its client").
    assert render_ms < 3000, render_ms
    assert max(timings) < 1500, timings
    await page.close()
