"""The operator console in a real browser: a pendant press live in the queue, acknowledge, assign, the patrol's
phone view (on the way, on site, done), the full history; and 500 open items (figures in docs/benchmarks.md)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import BrowserContext

from tests import console_fixtures
from tests.console_fixtures import (
    PENDANT,
    ConsoleSystem,
    PageErrors,
    log_in,
    open_page,
    screenshot,
)

# the module-scoped fixtures (tests/conftest.py is not the console's): one system and one browser per module
browser = console_fixtures.browser
console_system = console_fixtures.console_system
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_press_to_resolved_through_queue_and_patrol_view(
    console_system: ConsoleSystem, browser: BrowserContext
) -> None:
    sys = console_system
    op = await open_page(browser, sys.base)
    op_errors = PageErrors(op)
    await log_in(op, sys.base, "op")
    assert op.url.endswith("#/queue")
    await op.wait_for_selector("#live.on")

    pat = await open_page(browser, sys.base, viewport={"width": 390, "height": 844})
    await log_in(pat, sys.base, "pat")  # sessions are per tab (sessionStorage): two roles side by side
    assert pat.url.endswith("#/patrol")

    # a simulated pendant press appears in the queue within 2 s, without reload
    t0 = time.monotonic()
    alarm_id = await sys.pendant.press(text="Hjälp, har ramlat")
    row = await op.wait_for_selector('#queue li.row[data-type="assistance"][data-state="new"]', timeout=2000)
    elapsed = time.monotonic() - t0
    assert row is not None and elapsed < 2.0, elapsed
    pk = int(await row.get_attribute("data-id") or 0)
    assert await op.evaluate("() => window.__beeps || 0") >= 1  # the audible cue fired (muted or not)
    await screenshot(op, "queue")

    # the client presses again: collapsed into the same row, which says so live (issue 8)
    again = await sys.pendant.press(text="Hjälp, har ramlat")
    # (read through the page, not an element handle: the row is drawn again on each live update)
    await op.wait_for_function(
        "(pk) => (document.querySelector(`#alarm-${pk} .repeats-tag`)?.textContent || '')"
        ".startsWith('+1 IGEN, senast ')",
        arg=pk,
        timeout=5000,
    )
    assert await op.locator('#queue li.row[data-type="assistance"]').count() == 1

    # keyboard: select, acknowledge -> the device hears "acknowledged", for both presses
    await op.click(f"#alarm-{pk}")
    await op.keyboard.press("a")
    await sys.pendant.wait_for_status(alarm_id, "acknowledged", 5)
    await sys.pendant.wait_for_status(again, "acknowledged", 5)
    await op.wait_for_selector(f'#alarm-{pk}[data-state="acknowledged"]')

    # a note from the keyboard
    await op.keyboard.press("n")
    await op.fill("#f-note", "ringt brukaren, svarar inte")
    await op.keyboard.press("Control+Enter")  # a note may have several lines: Ctrl+Enter saves
    await op.wait_for_selector("#dialog", state="hidden")
    # assign to the patrol from the keyboard
    await op.keyboard.press("s")
    await op.select_option("#f-patrol", "pat")
    await op.fill("#f-note", "nyckel i nyckelskåpet")
    await op.click("#dialog-ok")
    await op.wait_for_selector(f'#alarm-{pk}[data-state="assigned"]')

    # the patrol's phone (a second page, logged in as the patrol): the task appears live
    await pat.wait_for_selector(f"#task-{pk}")
    assert "astrid" in (await pat.inner_text(f"#task-{pk}"))
    assert "nyckel i nyckelskåpet" in (await pat.inner_text(f"#task-{pk}"))
    await screenshot(pat, "patrol")
    await pat.click(f"#way-{pk}")
    await pat.wait_for_function(f"() => (document.querySelector('#task-{pk}') || {{}}).innerText?.includes('på väg')")
    await pat.click(f"#onsite-{pk}")
    await pat.wait_for_selector(f'#task-{pk}[data-state="on_site"]')

    # the operator's detail view: history so far and the device's health
    await op.goto(f"{sys.base}/console/#/alarm/{pk}")
    await op.wait_for_selector("#history li >> nth=4")
    health = await op.inner_text("#health")
    assert "online" in health and "pend1" in health
    await screenshot(op, "alarm-detail")

    await pat.click(f"#done-{pk}")
    await pat.select_option("#f-outcome", "helped")
    await pat.click("#dialog-ok")
    await pat.wait_for_selector(f"#task-{pk}", state="detached")
    await op.wait_for_selector('#detail-state[data-state="resolved"]')

    async with await sys.http("op") as http:
        detail = (await http.get(f"/api/v1/alarms/{pk}")).json()
    actions = [e["action"] for e in detail["events"]]
    for needed in ("acknowledge", "note", "assign", "on_site", "resolve"):
        assert needed in actions, actions
    assert detail["state"] == "resolved" and detail["outcome"] == "helped"
    assert detail["device_id"] == PENDANT
    assert not op_errors.csp(), op_errors.messages
    await op.close()
    await pat.close()


async def test_queue_with_500_open_items(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    now = datetime.now(UTC)
    items = [
        {
            "kind": "alarm",
            "device_id": f"load{i:03d}",  # a device each: one device's alarms of one type would be one item
            "alarm_id": f"load-{i}",
            "type": ("assistance", "fall", "device_offline", "low_battery", "checkin_due")[i % 5],
            "priority": i % 10,
            "device_ts": (now - timedelta(seconds=600 - i)).isoformat(),
            "stored_at": (now - timedelta(seconds=600 - i)).isoformat(),
            "details": {"client_ref": f"client-{i % 80}", "text": f"load item {i}"},
        }
        for i in range(500)
    ]
    token = sys.settings.intake_token.get_secret_value()
    async with httpx.AsyncClient(base_url=sys.base, timeout=30) as http:
        r = await http.post("/api/v1/intake", json={"items": items}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        opened = await http.get(
            "/api/v1/alarms", params={"limit": 5000}, headers={"Authorization": f"Bearer {await sys.token('op')}"}
        )
    n_open = len(opened.json())
    assert n_open >= 500

    page = await open_page(browser, sys.base)
    await log_in(page, sys.base, "op")
    await page.wait_for_function(f"() => window.__perf && window.__perf.rendered >= {n_open}")
    await page.wait_for_selector("#live.on")
    render_ms = await page.evaluate("() => window.__perf.renderMs")
    # order in the page = the API's order
    ids = await page.eval_on_selector_all("#queue li.row", "els => els.map(e => Number(e.dataset.id))")
    assert ids == [a["id"] for a in opened.json()]

    # live updates: one new item at a time, timed in the page from the SSE message to the laid-out DOM
    timings = []
    for i in range(5):
        before = await page.evaluate("() => window.__perf.updates.length")
        one = dict(items[0], alarm_id=f"live-{i}", priority=8, stored_at=datetime.now(UTC).isoformat())
        async with httpx.AsyncClient(base_url=sys.base, timeout=30) as http:
            r = await http.post("/api/v1/intake", json={"items": [one]}, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
        await page.wait_for_function(f"() => window.__perf.updates.length > {before}")
        timings.append(await page.evaluate("() => window.__perf.lastUpdateMs"))
    # keyboard stays responsive: j moves the selection
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    t_key = await page.evaluate(
        """() => { const t0 = performance.now();
                   document.dispatchEvent(new KeyboardEvent('keydown', {key: 'j'}));
                   void document.body.offsetHeight; return performance.now() - t0; }"""
    )
    print(f"\nCONSOLE-BENCH open={n_open + 5} render_ms={render_ms:.1f} update_ms={sorted(timings)} key_ms={t_key:.2f}")
    # Sanity bounds far above the figures (docs/benchmarks.md: 15-25 ms a live update on a quiet machine), so a
    # loaded CI machine does not fail them; the figures themselves are the benchmark's, not this test's.
    assert render_ms < 2000, render_ms
    assert max(timings) < 1000, timings
    await screenshot(page, "queue-500")
    await page.close()
