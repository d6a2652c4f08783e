"""The operator's shift in a real browser: triage (new alarms first and selected first, those in progress in
their own group, the escalation frame gone once acknowledged), search and filters, more than 8 rows at
1366x768; the age that counts on the detail page, messages that do not follow to the next page; notes that
keep their text (limit shown, multi-line); the sound banner after a reload, the repeating sound, the sound
button that says its state and action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

from tests import console_fixtures
from tests.console_fixtures import (
    ConsoleSystem,
    PageErrors,
    chromium,
    inject,
    log_in,
    open_page,
    screenshot,
)

browser = console_fixtures.browser
console_system = console_fixtures.console_system
pytestmark = pytest.mark.asyncio(loop_scope="module")

# A browser's autoplay policy, as desktop Chromium applies it: an AudioContext made before the user has clicked or
# typed in the page stays suspended, and resume() does nothing until then. Headless Chromium does not apply the
# policy at all, so this test page gets it from an init script (the console itself is unchanged).
AUTOPLAY_POLICY = """
(() => {
  const Real = window.AudioContext;
  if (!Real) return;
  window.AudioContext = class extends Real {
    constructor(...args) { super(...args); super.suspend(); }
    resume() { return navigator.userActivation.hasBeenActive ? super.resume() : Promise.resolve(); }
  };
})();
"""


async def clear_queue(sys: ConsoleSystem) -> None:
    """Resolve (or cancel) everything open, so that each test starts from an empty queue."""
    async with await sys.http("op") as http:
        for a in (await http.get("/api/v1/alarms", params={"limit": 5000})).json():
            if a["state"] == "new":
                await http.post(f"/api/v1/alarms/{a['id']}/cancel", json={})
            else:
                await http.post(f"/api/v1/alarms/{a['id']}/resolve", json={"outcome": "other"})


async def row_ids(page: Page) -> list[int]:
    ids = await page.eval_on_selector_all("#queue li.row:not([hidden])", "els => els.map(e => e.dataset.id)")
    return [int(x) for x in ids]


async def test_triage_groups_selection_and_escalation(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    await clear_queue(sys)
    now = datetime.now(UTC)
    # a critical alarm already with a patrol, an acknowledged one, and two new ones of lower priority
    earlier = (now - timedelta(seconds=30)).isoformat()
    assigned = await inject(sys, "t-assigned", type="fall", priority=9, stored_at=earlier)
    acked = await inject(sys, "t-acked", type="smoke", priority=9)
    async with await sys.http("op") as http:
        for pk in (assigned, acked):
            assert (await http.post(f"/api/v1/alarms/{pk}/acknowledge", json={})).status_code == 200
        r = await http.post(f"/api/v1/alarms/{assigned}/assign", json={"patrol": "pat"})
        assert r.status_code == 200
    old = (now - timedelta(minutes=5)).isoformat()  # escalated at once (level 2: not acknowledged within 3 min)
    escalated = await inject(sys, "t-escalated", type="assistance", priority=7, stored_at=old, device_ts=old)
    low = await inject(sys, "t-low", type="door", priority=5)

    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    await log_in(page, sys.base, "op")
    await page.wait_for_selector(f'#alarm-{escalated}.esc.esc-2[data-state="new"]')
    # new alarms first (priority, then age), those in progress in their own group below
    assert await row_ids(page) == [escalated, low, assigned, acked]
    assert "(2)" in await page.inner_text("#group-new") and "(2)" in await page.inner_text("#group-open")
    new_rows = await page.eval_on_selector_all("#queue-new li.row", "els => els.map(e => Number(e.dataset.id))")
    assert new_rows == [escalated, low]
    # selected first: the top new alarm, never one with a patrol
    await page.wait_for_selector(f"#alarm-{escalated}.selected")
    # `a` acknowledges what waits: no refusal; the escalation frame stops; the row moves to the group in progress
    await page.keyboard.press("a")
    await page.wait_for_selector(f'#queue-open #alarm-{escalated}[data-state="acknowledged"]')
    cls = await page.get_attribute(f"#alarm-{escalated}", "class") or ""
    assert "esc" not in cls.split(), cls
    assert await page.query_selector(f"#alarm-{escalated} .esc-tag") is None
    assert await page.inner_text("#status") == ""
    # the operator's own choice stays selected (to assign it next); the next new alarm is one click away
    assert "selected" in (await page.get_attribute(f"#alarm-{escalated}", "class") or "")
    await page.click(f"#alarm-{low}")
    await page.keyboard.press("a")
    await page.wait_for_selector(f'#alarm-{low}[data-state="acknowledged"]')
    # nothing new: after a reload nothing is preselected (never an alarm in progress)
    await page.reload()
    await page.wait_for_selector(f"#alarm-{low}")
    assert await page.query_selector("#queue li.row.selected") is None
    # the API has the same order
    async with await sys.http("op") as http:
        api_ids = [a["id"] for a in (await http.get("/api/v1/alarms")).json()]
    assert api_ids == await row_ids(page)
    assert not errors.csp(), errors.messages
    await page.close()


async def test_search_filters_and_rows_at_1366x768(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    await clear_queue(sys)
    kinds = ["fall", "assistance", "device_offline", "low_battery", "checkin_due", "door"]
    ids: dict[str, int] = {}
    for i in range(14):
        area = "norr" if i % 2 else "söder"
        details: dict[str, Any] = {"client_ref": f"brukare-{i:02d}", "area": area, "text": f"rum {i}"}
        ids[f"f{i}"] = await inject(
            sys, f"f{i}", device_id=f"dev{i:02d}", type=kinds[i % len(kinds)], priority=(i % 5) + 4, details=details
        )
    async with await sys.http("op") as http:
        await http.post(f"/api/v1/alarms/{ids['f0']}/acknowledge", json={})

    page = await open_page(browser, sys.base, viewport={"width": 1366, "height": 768})
    await log_in(page, sys.base, "op")
    await page.wait_for_function("() => document.querySelectorAll('#queue li.row').length === 14")
    # more than 8 rows fit on a 1366x768 screen
    visible = await page.evaluate(
        """() => [...document.querySelectorAll('#queue li.row')]
                 .filter(r => r.getBoundingClientRect().bottom <= innerHeight).length"""
    )
    assert visible > 8, visible
    await screenshot(page, "queue-triage")

    # search: a client, a device
    await page.fill("#q", "brukare-03")
    await page.wait_for_function("() => document.querySelectorAll('#queue li.row:not([hidden])').length === 1")
    assert await row_ids(page) == [ids["f3"]]
    await page.fill("#q", "dev11")
    await page.wait_for_function(f"() => !document.getElementById('alarm-{ids['f11']}').hidden")
    assert await row_ids(page) == [ids["f11"]]
    assert "av 14 visas" in await page.inner_text("#count")
    await page.fill("#q", "")
    # filters: type, area, state
    await page.select_option("#f-type", "fall")
    assert set(await row_ids(page)) == {ids["f0"], ids["f6"], ids["f12"]}
    await page.select_option("#f-area", "söder")
    assert set(await row_ids(page)) == {ids["f0"], ids["f6"], ids["f12"]}
    await page.select_option("#f-area", "norr")
    assert await row_ids(page) == []
    assert await page.is_visible("#queue-no-match")
    await page.click("#f-clear")
    await page.select_option("#f-state", "progress")
    assert await row_ids(page) == [ids["f0"]]
    await page.select_option("#f-state", "new")
    assert len(await row_ids(page)) == 13
    await page.select_option("#f-area", "söder")
    assert set(await row_ids(page)) == {ids[f"f{i}"] for i in range(2, 14, 2)}
    # `/` goes to the search; j/k walk only what is shown
    await page.click("#f-clear")
    await page.keyboard.press("/")
    assert await page.evaluate("() => document.activeElement.id") == "q"
    await page.close()


async def test_detail_age_ticks_and_messages_stay_on_their_page(
    console_system: ConsoleSystem, browser: BrowserContext
) -> None:
    sys = console_system
    await clear_queue(sys)
    pk = await inject(sys, "age-1", type="fall", priority=8)
    page = await open_page(browser, sys.base)
    await log_in(page, sys.base, "op")
    await page.goto(f"{sys.base}/console/#/alarm/{pk}")
    first = await (await page.wait_for_selector("#detail-age")).inner_text()
    await page.wait_for_function(f"() => document.getElementById('detail-age').textContent !== {first!r}", timeout=3000)
    # a refusal shown on one page (a second acknowledgement: 409) is gone on the next page at once
    async with await sys.http("op") as http:
        await http.post(f"/api/v1/alarms/{pk}/acknowledge", json={})
    await page.goto(f"{sys.base}/console/#/queue")
    await page.wait_for_selector(f'#alarm-{pk}[data-state="acknowledged"]')
    await page.click(f"#alarm-{pk}")
    await page.click("#act-ack")
    await page.wait_for_selector("#status.error")
    assert "Det går inte att kvittera larmet: det är kvitterat." in await page.inner_text("#status")
    await page.click("#nav-overview")
    await page.wait_for_function("() => document.body.dataset.page === 'overview'")
    assert await page.inner_text("#status") == ""
    await page.close()


async def test_notes_keep_their_text_show_the_limit_and_take_lines(
    console_system: ConsoleSystem, browser: BrowserContext
) -> None:
    sys = console_system
    await clear_queue(sys)
    pk = await inject(sys, "note-1", type="fall", priority=8)
    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    await log_in(page, sys.base, "op")
    await page.wait_for_selector(f"#alarm-{pk}.selected")
    # over the limit: the counter says so, the dialog stays open with the text, nothing is sent
    await page.keyboard.press("n")
    long_text = "Brukaren berättar länge. " * 82  # 2,050 characters
    await page.fill("#f-note", long_text)
    assert await page.inner_text("#f-note-count") == "2050 / 2000 tecken"
    assert "over" in (await page.get_attribute("#f-note-count", "class") or "")
    await page.click("#dialog-ok")
    await page.wait_for_selector("#dialog-error:text('för lång')")
    await screenshot(page, "note-too-long")
    assert await page.is_visible("#dialog") and await page.input_value("#f-note") == long_text
    # several lines: Enter makes a new line, Ctrl+Enter saves
    await page.fill("#f-note", "")
    await page.type("#f-note", "rad ett")
    await page.keyboard.press("Enter")
    await page.type("#f-note", "rad två")
    assert await page.is_visible("#dialog")
    await page.keyboard.press("Control+Enter")
    await page.wait_for_selector("#dialog", state="hidden")
    await page.goto(f"{sys.base}/console/#/alarm/{pk}")
    note = await page.wait_for_selector('#history li[data-action="note"] .ev-note')
    assert await note.inner_text() == "rad ett\nrad två"
    # a refusal from the server (resolved meanwhile: 409) keeps the dialog and its text
    async with await sys.http("op") as http:
        await http.post(f"/api/v1/alarms/{pk}/acknowledge", json={})
    await page.wait_for_selector('#detail-state[data-state="acknowledged"]')
    await page.click("#d-assign")
    await page.fill("#f-note", "nyckel i nyckelskåpet, kod finns hos gruppen")
    async with await sys.http("op") as http:
        assert (await http.post(f"/api/v1/alarms/{pk}/resolve", json={"outcome": "false"})).status_code == 200
    await page.click("#dialog-ok")
    await page.wait_for_selector("#dialog-error:text('Det går inte att tilldela larmet: det är avslutat.')")
    assert await page.input_value("#f-note") == "nyckel i nyckelskåpet, kod finns hos gruppen"
    await page.click("#dialog-cancel")
    assert not errors.csp(), errors.messages
    await page.close()


async def test_sound_banner_after_reload_repeats_until_acknowledged(
    console_system: ConsoleSystem, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sys = console_system
    await clear_queue(sys)
    async with chromium(tmp_path_factory.mktemp("autoplay-profile")) as ctx:
        await ctx.add_init_script(AUTOPLAY_POLICY)
        page = await open_page(ctx, sys.base)
        await log_in(page, sys.base, "op")  # typing in the page: sound may start
        await page.wait_for_selector("#live.on")
        assert await page.is_hidden("#sound-banner")
        # the sound button says the state and the action
        assert await page.inner_text("#mute") == "Ljud: på · Stäng av"
        assert await page.get_attribute("#mute", "aria-pressed") == "false"
        # after a reload nothing may sound until the operator clicks: the banner says so
        await page.reload()
        await page.wait_for_selector("#live.on")
        banner = await page.wait_for_selector("#sound-banner:not([hidden])")
        assert "klicka" in await banner.inner_text()
        await screenshot(page, "sound-banner")
        # a new priority alarm sounds, and again, until it is acknowledged
        before = await page.evaluate("() => window.__beeps || 0")
        alarm_id = await sys.pendant.press("fall")
        await page.wait_for_selector('#queue li.row[data-type="fall"][data-state="new"]')
        await page.wait_for_function(f"() => window.__beeps >= {before + 2}", timeout=10_000)  # repeats
        await page.click("#sound-banner")
        await page.wait_for_selector("#sound-banner", state="hidden")
        assert await page.evaluate("() => window.__sounding") is True
        await page.keyboard.press("a")
        await sys.pendant.wait_for_status(alarm_id, "acknowledged", 5)
        await page.wait_for_function("() => window.__sounding === false")
        # muted: the button says so and what it does now; no banner while muted
        await page.click("#mute")
        assert await page.inner_text("#mute") == "Ljud: av · Slå på"
        assert await page.get_attribute("#mute", "aria-pressed") == "true"
        await page.click("#mute")
        await page.close()
