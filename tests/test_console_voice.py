"""A voice call from the console in a real browser (Chromium with its fake microphone, which beeps at 400 Hz):
the simulated base unit's pendant is pressed, the call rings in the alarm's row and detail, the operator answers
with the key "c"; the unit's 1 kHz tone is heard in the page (WebAudio analyser) and the browser's microphone by
the unit; "help is coming" reaches the pendant; hang-up ends both sides; the history shows the call in Swedish;
a callback from the detail and a call from the patrol view; a technician is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, Page, async_playwright

from devices import DeviceType
from firmware_sim.base_unit import SimBaseUnit
from gateway.registry import add_device
from gateway.voice.relay import VoiceRelayFeature
from testing.wait import eventually
from tests import console_fixtures
from tests.console_fixtures import CHROMIUM, CHROMIUM_FLAGS, ConsoleSystem, PageErrors, log_in, open_page, screenshot

console_system = console_fixtures.console_system
pytestmark = pytest.mark.asyncio(loop_scope="module")
UNIT = "unit1"
UNIT_HZ = 1000.0
FAKE_MIC_HZ = 400.0  # Chromium's fake audio capture: 20 ms beeps of a 400 Hz square wave


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BrowserContext]:
    async with async_playwright() as pw:
        ctx = await pw.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path_factory.mktemp("chromium-voice")),
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_FLAGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
            viewport={"width": 1280, "height": 800},
            locale="sv-SE",
            timezone_id="Europe/Stockholm",
        )
        try:
            yield ctx
        finally:
            await ctx.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def unit(console_system: ConsoleSystem) -> AsyncIterator[SimBaseUnit]:
    """Astrid's base unit, paired with her pendant (the console system's)."""
    sys = console_system
    async with sys.gateway.sessions.begin() as session:
        await add_device(session, UNIT, DeviceType.BASE_UNIT, client_ref="astrid", location="Storgatan 1, lgh 1102")
    base = SimBaseUnit(UNIT, sys.settings, pendants=[sys.pendant], tone_hz=UNIT_HZ)
    await base.start()
    relay = sys.gateway.feature(VoiceRelayFeature)
    await eventually(lambda: UNIT in relay.voice_units(), timeout=10)
    try:
        yield base
    finally:
        await base.stop()


TONE_ABOVE_NOISE_DB = """(hz) => {
  const s = window.__call.spectrum && window.__call.spectrum();
  if (!s) return null;
  const bin = Math.round(hz * s.fft / s.rate);
  const peak = Math.max(s.db[bin - 1], s.db[bin], s.db[bin + 1]);
  const band = s.db.slice(Math.round(100 * s.fft / s.rate), Math.round(4000 * s.fft / s.rate))
    .filter(Number.isFinite).sort((a, b) => a - b);
  return band.length ? peak - band[Math.floor(band.length / 2)] : null;
}"""


async def alarm_pk(sys: ConsoleSystem, alarm_id: str) -> int:
    async def find() -> int | None:
        async with await sys.http("op") as http:
            rows = (await http.get("/api/v1/alarms", params={"all_states": "true"})).json()
        return next((a["id"] for a in rows if a["alarm_id"] == alarm_id), None)

    pk: int = await eventually(find, timeout=15, interval=0.2)
    return pk


async def tone_heard(page: Page) -> float:
    async def above() -> float | None:
        db = await page.evaluate(TONE_ABOVE_NOISE_DB, UNIT_HZ)
        return float(db) if db is not None and db > 20 else None

    db: float = await eventually(above, timeout=15, interval=0.3)
    return db


async def test_the_unit_calls_the_operator_answers_and_they_hear_each_other(
    console_system: ConsoleSystem, browser: BrowserContext, unit: SimBaseUnit
) -> None:
    sys = console_system
    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    await log_in(page, sys.base, "op")
    alarm_id = await unit.press(pendant=0)
    pk = await alarm_pk(sys, alarm_id)
    await page.wait_for_selector(f"#alarm-{pk}.ringing #ring-{pk}", timeout=15_000)  # rings in the row
    await screenshot(page, "voice-ringing")
    await page.goto(f"{sys.base}/console/#/alarm/{pk}")
    await page.wait_for_selector("#d-answer.ringing")  # and in the detail
    await page.keyboard.press("c")  # answered with a key
    await page.wait_for_function("() => window.__call.state === 'live'", timeout=20_000)
    call = unit.current
    assert call is not None and not call.callback
    assert "astrid" in await page.inner_text("#call-client")

    db = await tone_heard(page)  # the unit's tone in the page, above the noise
    assert db > 20
    await eventually(lambda: call.heard.ratio(FAKE_MIC_HZ) > 10, timeout=15, interval=0.3)  # the fake microphone
    assert call.heard.ratio(FAKE_MIC_HZ) > 3 * call.heard.ratio(UNIT_HZ)  # the unit hears the browser, not itself
    await page.wait_for_function("() => document.getElementById('call-timer').textContent !== '00:00'")
    await page.click("#call-mute")
    assert await page.get_attribute("#call-mute", "aria-pressed") == "true"
    await page.click("#call-mute")
    await page.fill("#call-volume", "40")
    assert await page.evaluate("() => document.getElementById('call-audio').volume") == pytest.approx(0.4)
    await screenshot(page, "voice-in-call")
    await page.click("#call-help")  # "help is coming": the new alarm is acknowledged, the pendant told
    await sys.pendant.wait_for_status(alarm_id, "acknowledged", 15)

    await page.click("#call-hangup")
    await call.ended.wait()
    assert call.ended_by is not None and call.ended_by.value == "gateway"
    await page.wait_for_function("() => window.__call.state === 'ended'", timeout=10_000)
    await page.wait_for_selector('#history li[data-code="call.ended"]', timeout=15_000)
    history = await page.inner_text("#history")
    assert "Enheten ringer" in history and "Samtal besvarat av op" in history, history
    assert "operatören lade på" in history and "Okänt besked" not in history, history
    assert not errors.csp(), errors.messages

    # a callback from the detail; the unit hangs up: the page says so
    await page.click("#call-close")
    await page.wait_for_selector("#d-callback")
    await page.click("#d-callback")
    await page.wait_for_function("() => window.__call.state === 'live'", timeout=20_000)
    back = unit.current
    assert back is not None and back.callback
    await tone_heard(page)
    await unit.hang_up()
    await page.wait_for_function("() => window.__call.state === 'ended'", timeout=10_000)
    assert "avslutat" in await page.inner_text("#call-state")
    await page.close()


async def test_patrol_calls_and_a_technician_is_refused(
    console_system: ConsoleSystem, browser: BrowserContext, unit: SimBaseUnit
) -> None:
    sys = console_system
    alarm_id = await sys.pendant.press("fall")
    pk = await alarm_pk(sys, alarm_id)
    async with await sys.http("op") as http:
        await http.post(f"/api/v1/alarms/{pk}/acknowledge", json={})
        r = await http.post(f"/api/v1/alarms/{pk}/assign", json={"patrol": "pat"})
        assert r.status_code == 200, r.text
    page = await open_page(browser, sys.base)
    await log_in(page, sys.base, "pat")
    await page.goto(f"{sys.base}/console/#/patrol")
    await page.click(f"#p-call-{pk}")
    await page.wait_for_function("() => window.__call.state === 'live'", timeout=20_000)
    call = unit.current
    assert call is not None and call.callback
    await tone_heard(page)
    await page.click("#call-hangup")
    await call.ended.wait()
    await page.close()

    tech = await open_page(browser, sys.base)
    await log_in(tech, sys.base, "tech")
    status: list[Any] = await tech.evaluate(
        """async ([device_id, alarm_id]) => { const s = JSON.parse(sessionStorage.getItem('trygg.session'));
           const r = await fetch('/gw/api/v1/voice/callback', {method: 'POST',
             headers: {'Authorization': `Bearer ${s.token}`, 'Content-Type': 'application/json'},
             body: JSON.stringify({device_id, alarm_id, sdp: 'v=0', type: 'offer'})});
           return [r.status, (await r.json()).code]; }""",
        [sys.pendant.device_id, alarm_id],
    )
    assert status == [403, "voice.role_refused"]
    assert unit.current is None
    await tech.close()
