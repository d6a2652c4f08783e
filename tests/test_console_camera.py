"""A camera check-in from the console in a real browser: video from the simulated camera through the gateway,
the countdown ends the look at the consent's cap (10 s), the outcome is logged; a technician sees no camera."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import BrowserContext

from testing.wait import eventually
from tests import console_fixtures
from tests.console_fixtures import (
    CAMERA,
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
STOCKHOLM = ZoneInfo("Europe/Stockholm")

FRAME_SIGNATURE = """() => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = 64; c.height = 48;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, 64, 48);
  const d = g.getImageData(0, 0, 64, 48).data;
  let sum = 0; for (let i = 0; i < d.length; i += 4) sum += d[i] * 3 + d[i + 1] * 5 + d[i + 2] * 7;
  return Array.from(d.filter((_, i) => i % 4 !== 3).slice(0, 3000));
}"""


async def due_checkin(sys: ConsoleSystem, max_look_s: float = 10) -> tuple[dict[str, Any], dict[str, Any]]:
    """A consent whose next agreed time is the coming minute, then the scheduler's clock moved past it."""
    now = datetime.now(UTC)
    local = now.astimezone(STOCKHOLM)
    slot = (local + timedelta(minutes=1)).replace(second=0, microsecond=0)
    body = {
        "client_ref": "bertil",
        "camera_id": CAMERA,
        "consented_by": [{"name": "Bertil", "role": "client"}],
        "basis": "beslut 2026-0042",
        "window_start": (local - timedelta(hours=3)).strftime("%H:%M"),
        "window_end": (local + timedelta(hours=3)).strftime("%H:%M"),
        "times": [slot.strftime("%H:%M")],
        "max_look_s": max_look_s,
        "privacy": "blurred",
    }
    async with await sys.http("case") as http:
        r = await http.post("/gw/api/v1/consents", json=body)
        assert r.status_code == 201, r.text
        consent = r.json()
    shift = (slot.astimezone(UTC) - now).total_seconds() + 5
    sys.checkin.now = lambda: datetime.now(UTC) + timedelta(seconds=shift)  # the scheduler runs every second

    async def task() -> dict[str, Any] | None:
        async with await sys.http("op") as http:
            rows = (await http.get("/api/v1/alarms")).json()
        return next((a for a in rows if a["type"] == "checkin_due"), None)

    return consent, await eventually(task, timeout=10, interval=0.2)


async def test_camera_checkin_from_the_console(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    _consent, task = await due_checkin(sys)
    checkin_id = task["details"]["checkin_id"]
    assert task["alarm_id"] == f"checkin-{checkin_id}"

    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    await log_in(page, sys.base, "op")
    await page.wait_for_selector(f'#alarm-{task["id"]}[data-type="checkin_due"]')
    await page.click(f"#alarm-{task['id']}")
    await page.keyboard.press("Enter")
    await page.click("#d-checkin")
    await page.wait_for_selector("#start-look")
    terms = await page.inner_text("#main")
    assert "10 s" in terms and "suddigt" in terms and "Bertil" in terms
    assert "planerad tillsyn" in terms and "att göra" in terms and "brukaren" in terms  # values in Swedish too

    await page.click("#start-look")
    await page.wait_for_function("() => document.getElementById('video').videoWidth > 0", timeout=5000)
    started = time.monotonic()
    width = await page.evaluate("() => document.getElementById('video').videoWidth")
    assert width > 0
    first = await page.evaluate(FRAME_SIGNATURE)

    async def changed() -> bool:
        return bool(await page.evaluate(FRAME_SIGNATURE) != first)

    await eventually(changed, timeout=4, interval=0.2)  # live video: the drawn pixels change
    assert any(first), "the frame is not all black"
    await screenshot(page, "camera-checkin")

    # the countdown ends the look at the cap (10 s)
    await page.wait_for_function("() => window.__look.state === 'ended'", timeout=15_000)
    length = time.monotonic() - started
    assert 8.0 <= length <= 12.0, length
    assert await page.evaluate("() => window.__look.max_s") == 10

    assert await page.inner_text("#checkin-state") == "pågår"  # the card follows the check-in
    await page.click("#out-seen_ok")
    await page.wait_for_function("() => window.__look.outcome === 'seen_ok'")
    assert await page.inner_text("#checkin-state") == "utförd"  # no longer "att göra"
    async with await sys.http("op") as http:
        ck = (await http.get(f"/gw/api/v1/checkins/{checkin_id}")).json()
    assert ck["state"] == "done" and ck["outcome"] == "seen_ok" and ck["outcome_by"] == "op"
    async with await sys.http("case") as http:
        log = (await http.get("/gw/api/v1/clients/bertil/log")).json()
    actions = [e["action"] for e in log]
    assert {"checkin.look_started", "checkin.look_ended", "checkin.outcome"} <= set(actions), actions
    ended = next(e for e in log if e["action"] == "checkin.look_ended")
    assert ended["details"]["duration_s"] <= 11.5 and ended["details"]["frames_relayed"] > 0
    assert not errors.csp(), errors.messages

    # a technician sees no camera page and no video, and the gateway refuses the look itself
    tech = await open_page(browser, sys.base)
    await log_in(tech, sys.base, "tech")
    await tech.goto(f"{sys.base}/console/#/checkin/{checkin_id}")
    await tech.wait_for_selector("#forbidden")
    assert await tech.query_selector("video") is None
    status = await tech.evaluate(
        """async (id) => { const s = JSON.parse(sessionStorage.getItem('trygg.session'));
           const r = await fetch(`/gw/api/v1/checkins/${id}/look`, {method: 'POST',
             headers: {'Authorization': `Bearer ${s.token}`, 'Content-Type': 'application/json'},
             body: JSON.stringify({sdp: 'v=0', type: 'offer'})});
           return [r.status, (await r.json()).detail]; }""",
        checkin_id,
    )
    assert status[0] == 403 and "operators only" in status[1]
    # a refusal shown as a readable message: the check-in is done, a new look is refused (409/403 detail)
    await page.goto(f"{sys.base}/console/#/checkin/{checkin_id}")
    await page.click("#start-look")
    await page.wait_for_selector("#checkin-msg.error")
    assert "Tillsynen är inte aktuell (den är utförd)" in await page.inner_text("#checkin-msg")  # Swedish, coded
    await page.close()
    await tech.close()


async def test_a_reload_ends_the_look_and_the_same_operator_takes_over(
    console_system: ConsoleSystem, browser: BrowserContext
) -> None:
    """A reload during a look ends it at the gateway at once (not at its cap), and the log says why; the same
    operator's look still live in another tab can be taken over, or ended, at once."""
    sys = console_system
    async with await sys.http("case") as http:  # the first test's consent is done with
        for c in (await http.get("/gw/api/v1/consents", params={"client_ref": "bertil"})).json():
            await http.post(f"/gw/api/v1/consents/{c['id']}/withdraw", json={"reason": "ny prövning"})
    sys.checkin.now = lambda: datetime.now(UTC)  # the scheduler's clock back to now: due_checkin moves it again
    _consent, task = await due_checkin(sys, max_look_s=60)
    checkin_id = task["details"]["checkin_id"]
    url = f"{sys.base}/console/#/checkin/{checkin_id}?alarm={task['id']}"

    async def live_looks() -> list[Any]:
        return [look for look in sys.checkin.live_looks() if look.checkin_id == checkin_id]

    async def none_live() -> bool:
        return not await live_looks()

    async def ended_entries() -> list[dict[str, Any]]:
        async with await sys.http("case") as http:
            log = (await http.get("/gw/api/v1/clients/bertil/log")).json()
        return [e for e in log if e["action"] == "checkin.look_ended" and e["subject"] == f"checkin-{checkin_id}"]

    first = await open_page(browser, sys.base)
    await log_in(first, sys.base, "op")
    await first.goto(url)
    await first.click("#start-look")
    await first.wait_for_function("() => window.__look.state === 'live'")
    started = time.monotonic()
    await first.reload()
    await eventually(none_live, timeout=5)
    assert time.monotonic() - started < 10  # not the 60 s cap
    [ended] = await eventually(ended_entries, timeout=5)
    assert ended["details"]["reason"] in ("page_left", "viewer_left"), ended
    assert ended["details"]["duration_s"] < 10
    # starting again works at once
    await first.wait_for_selector("#start-look")
    await first.click("#start-look")
    await first.wait_for_function("() => window.__look.state === 'live'")

    # the same operator in another tab: refused with a way out, then takes the look over
    second = await open_page(browser, sys.base)
    await log_in(second, sys.base, "op")
    await second.goto(url)
    await second.click("#start-look")
    await second.wait_for_selector("#take-over")
    assert "Din egen tittning" in await second.inner_text("#checkin-msg")
    await second.eval_on_selector("#look-fix", "el => el.scrollIntoView({block: 'end'})")
    await screenshot(second, "camera-take-over")
    await second.click("#take-over")
    await second.wait_for_function("() => window.__look.state === 'live'")
    entries = await eventually(ended_entries, timeout=5)

    async def taken_over() -> bool:
        return any(e["details"]["reason"] == "taken_over" for e in await ended_entries())

    await eventually(taken_over, timeout=5)
    assert len(entries) >= 1
    [look] = await live_looks()
    assert look.operator == "op" and look.look_id == await second.evaluate("() => window.__look.look_id")
    # the first tab sees its look end; from there the operator can also end their own live look at once
    await first.wait_for_function("() => window.__look.state === 'ended'")
    await first.reload()
    await first.wait_for_selector("#start-look")
    await first.click("#start-look")
    await first.wait_for_selector("#end-own")
    await first.click("#end-own")
    await eventually(none_live, timeout=5)
    reasons = [e["details"]["reason"] for e in await ended_entries()]
    assert reasons.count("taken_over") == 1 and "operator" in reasons, reasons
    await first.close()
    await second.close()
