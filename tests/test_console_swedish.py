"""No English in the Swedish console: a walk through its pages (queue, an alarm with a rich history, supervision
and check-in texts and outcomes, the check-in page, devices with a failed installation test, the overview, the
patrol's view, and refusals: a 409, a 422, a 404) fails on any text the server wrote in English that shows up,
on any code the console cannot translate, and on a handful of English phrases. The English comes from the
responses themselves: every refusal's ``detail`` and every English ``note``/``text``/``outcome``/``detail`` that
stands beside a code. Also: the date fields are ISO in a browser whose own locale is American."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, Request, Response

from gateway.fleet.feature import FleetFeature
from gateway.fleet.supervision import DeviceBackOnline, RaiseAreaOutage, RaiseOffline, ResolveOffline
from testing.wait import eventually
from tests import console_fixtures
from tests.console_fixtures import (
    CAMERA,
    PENDANT,
    ConsoleSystem,
    PageErrors,
    chromium,
    inject,
    log_in,
    open_page,
    screenshot,
)
from tests.test_console_camera import due_checkin

browser = console_fixtures.browser
console_system = console_fixtures.console_system
pytestmark = pytest.mark.asyncio(loop_scope="module")

CODE = re.compile(
    r"\b(?:alarm|checkin|outcome|task|device|consent|auth|http|request|area|test|look|invalid)\.[a-z_]+\b"
)
ENGLISH = (
    "cannot ",
    "assigned to",
    "outcome:",
    "not acknowledged",
    "String should",
    "Camera check-in",
    "no word from",
    "physical visit",
    "patrol visit",
    "back online",
    "belongs to",
    "is not",
    "Unknown message",
    "Okänt besked",
)


class EnglishSeen:
    """Collects the English the server sent beside a code (or as a refusal), from the page's own responses."""

    def __init__(self, page: Page) -> None:
        self.texts: set[str] = set()
        page.on("response", self._on_response)
        # The page's requests in flight, but the live feed: read with fetch() it stays open, so Playwright's
        # "networkidle" never comes; idle here is every other request answered for 0.5 s.
        self.pending: set[Request] = set()
        self.changed_at = 0.0
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request: Request) -> None:
        if "/api/v1/events" not in request.url:
            self.pending.add(request)
            self.changed_at = asyncio.get_running_loop().time()

    def _ended(self, request: Request) -> None:
        if request in self.pending:
            self.pending.discard(request)
            self.changed_at = asyncio.get_running_loop().time()

    async def idle(self) -> None:
        loop = asyncio.get_running_loop()
        await eventually(lambda: not self.pending and loop.time() - self.changed_at >= 0.5, timeout=10, interval=0.1)

    async def _on_response(self, response: Response) -> None:
        if "/api/v1/" not in response.url or "events" in response.url:
            return
        try:
            body = json.loads(await response.text())
        except Exception:
            return
        if response.status >= 400 and isinstance(body, dict) and isinstance(body.get("detail"), str):
            self.texts.add(body["detail"])
        self._walk(body)

    def _walk(self, value: Any) -> None:
        if isinstance(value, list):
            for v in value:
                self._walk(v)
        elif isinstance(value, dict):
            details = value.get("details")
            if isinstance(details, dict) and details.get("text_code") and details.get("text"):
                self.texts.add(details["text"])
            if value.get("outcome_code") and value.get("outcome"):
                self.texts.add(value["outcome"])
            if value.get("detail_code") and value.get("detail"):
                self.texts.add(value["detail"])
            if value.get("code") and value.get("note"):
                own = (value.get("params") or {}).get("note")
                if value["note"] != own:
                    self.texts.add(value["note"])
            for v in value.values():
                self._walk(v)

    async def check(self, page: Page, where: str) -> None:
        await self.idle()
        text = await page.evaluate(
            """() => [document.getElementById('top'), document.getElementById('status'),
                      document.getElementById('main'), document.getElementById('dialog')]
                     .map(e => (e && e.textContent) || '').join('\\n')"""
        )
        leaked = sorted(t for t in self.texts if len(t) >= 4 and t in text)
        assert not leaked, (where, leaked)
        codes = CODE.findall(text)
        assert not codes, (where, codes)
        phrases = [p for p in ENGLISH if p in text]
        assert not phrases, (where, phrases, text[:3000])


async def test_the_swedish_console_shows_no_english(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    fleet = next(f for f in sys.gateway.features if isinstance(f, FleetFeature))
    # --- a rich history: escalated, acknowledged, a note, assigned with a note, on site, resolved with a note
    old = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    rich = await inject(sys, "rich-1", type="fall", priority=8, stored_at=old, device_ts=old)

    async def escalated() -> bool:
        async with await sys.http("op") as http:
            return bool((await http.get(f"/api/v1/alarms/{rich}")).json()["escalation_level"])

    await eventually(escalated, timeout=10)
    async with await sys.http("op") as op, await sys.http("pat") as pat:
        assert (await op.post(f"/api/v1/alarms/{rich}/acknowledge", json={})).status_code == 200
        await op.post(f"/api/v1/alarms/{rich}/notes", json={"note": "ringt brukaren, svarar inte"})
        await op.post(f"/api/v1/alarms/{rich}/assign", json={"patrol": "pat", "note": "nyckel i nyckelskåpet"})
        await pat.post(f"/api/v1/alarms/{rich}/on-site", json={})
        await pat.post(f"/api/v1/alarms/{rich}/resolve", json={"outcome": "helped", "note": "hjälpte upp i sängen"})
        # one left with the patrol, with notes, for the patrol's view
        left = await inject(sys, "left-1", type="assistance", priority=7)
        await op.post(f"/api/v1/alarms/{left}/acknowledge", json={})
        await op.post(f"/api/v1/alarms/{left}/assign", json={"patrol": "pat", "note": "dörrkod finns hos gruppen"})
        await pat.post(f"/api/v1/alarms/{left}/notes", json={"note": "på väg"})
    # --- supervision texts and outcomes (the fleet feature's own actions, through the durable path)
    fleet._enqueue(
        [
            # two devices: a second offline alarm of one device while its first is open would be collapsed into it
            RaiseOffline(CAMERA, "offline-open", 95.0, "heartbeat deadline passed", "deadline"),
            RaiseOffline(PENDANT, "offline-done", 130.0, "last will: connection dropped", "last_will"),
            ResolveOffline(PENDANT, "offline-done", "device back online"),
            DeviceBackOnline(PENDANT, 12.0),
            RaiseAreaOutage("*", "area-w1", ("d1", "d2", "d3"), 9),
        ]
    )
    # --- a camera check-in made due, then missed (not started in time): a patrol visit, the task resolved
    _consent, task = await due_checkin(sys)
    checkin_id = task["details"]["checkin_id"]
    shifted = sys.checkin.now
    sys.checkin.now = lambda: shifted() + timedelta(seconds=sys.settings.checkin_start_timeout_s + 60)
    await sys.checkin.run_once()
    sys.checkin.now = shifted

    async def settled() -> list[dict[str, Any]] | None:
        async with await sys.http("op") as http:
            rows = (await http.get("/api/v1/alarms", params={"all_states": "true", "limit": 500})).json()
        types = {a["alarm_id"]: a for a in rows}
        ready = {"offline-open", "offline-done", "area-w1", f"patrol-{checkin_id}"} <= types.keys()
        return rows if ready and types["offline-done"]["state"] == "resolved" else None

    rows = await eventually(settled, timeout=15, interval=0.2)
    pk = {a["alarm_id"]: a["id"] for a in rows}
    # --- an alarm unit's unmapped code over SIA DC-09 (issue 11): its protocol among the details
    unit = {"protocol": "dc09", "text": "SIA:ZZ 9"}
    dc09 = await inject(sys, "dc09-1", type="generic_alarm", priority=7, details=unit)
    # --- a failed installation test
    async with await sys.http("tech") as http:
        assert (await http.post(f"/gw/api/v1/devices/{PENDANT}/install-test", json={"window_s": 1})).status_code == 201

        async def failed() -> bool:
            tests = (await http.get(f"/gw/api/v1/devices/{PENDANT}/install-tests")).json()
            return bool(tests and tests[0]["state"] == "failed")

        await eventually(failed, timeout=10, interval=0.2)

    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    seen = EnglishSeen(page)
    await log_in(page, sys.base, "op")
    await page.wait_for_selector(f"#alarm-{pk['offline-open']}")
    await page.wait_for_selector(f"#alarm-{pk[f'patrol-{checkin_id}']}")
    queue_text = await page.inner_text("#queue")
    assert "Inget hört från enheten på 95 s (kontrollsignalen uteblev)" in queue_text
    assert "3 av 9 enheter tysta i hela flottan" in queue_text
    assert "påbörjades inte inom 60 min: besök på plats" in queue_text
    await seen.check(page, "queue")

    # the rich history, every line in Swedish, the people's notes as written
    await page.goto(f"{sys.base}/console/#/alarm/{rich}")
    await page.wait_for_selector('#history li[data-action="resolve"]')
    history = await page.inner_text("#history")
    for line in (
        "mottaget",
        "eskalerat, nivå 2: inte kvitterat inom 180 s",
        "kvitterat",
        "ringt brukaren, svarar inte",
        "tilldelat patrull pat",
        "nyckel i nyckelskåpet",
        "patrullen är på plats",
        "avslutat: Hjälp given",
        "hjälpte upp i sängen",
    ):
        assert line in history, (line, history)
    assert "Hjälp given" in await page.inner_text("#main")
    await page.eval_on_selector("#history", "el => el.scrollIntoView({block: 'end'})")
    await screenshot(page, "alarm-history")
    await seen.check(page, "alarm detail")
    await page.goto(f"{sys.base}/console/#/alarm/{dc09}")
    await page.wait_for_selector("#detail-state")
    detail = await page.inner_text("#main")
    assert "Larm (okänd kod)" in detail and "Protokoll" in detail and "SIA DC-09" in detail and "SIA:ZZ 9" in detail
    await seen.check(page, "dc09 alarm")
    for alarm_id, outcome in (
        ("offline-done", "enheten är online igen"),
        (f"checkin-{checkin_id}", "inte påbörjad i tid: patrullbesök skickat"),
    ):
        await page.goto(f"{sys.base}/console/#/alarm/{pk[alarm_id]}")
        await page.wait_for_selector('#detail-state[data-state="resolved"]')
        assert outcome in await page.inner_text("#main")
        await seen.check(page, alarm_id)
    await page.goto(f"{sys.base}/console/#/checkin/{checkin_id}?alarm={pk[f'checkin-{checkin_id}']}")
    await page.wait_for_selector("#checkin-state")
    assert await page.inner_text("#checkin-state") == "missad (patrull skickad)"
    await seen.check(page, "check-in")
    await page.goto(f"{sys.base}/console/#/overview")
    await page.wait_for_selector("#timeline")
    await seen.check(page, "overview")

    # refusals: a 409 (acknowledged twice), a 404 (no such alarm)
    await page.goto(f"{sys.base}/console/#/queue")
    await page.click(f"#alarm-{pk['left-1']}")
    await page.click("#act-ack")
    await page.wait_for_selector("#status.error")
    assert await page.inner_text("#status") == "Fel: Det går inte att kvittera larmet: det är tilldelat."
    await seen.check(page, "409")
    await page.goto(f"{sys.base}/console/#/alarm/999999")
    await page.wait_for_selector("#page-error")
    assert await page.inner_text("#page-error") == "Fel: Larm 999999 finns inte."
    await seen.check(page, "404")
    await page.click("#logout")

    # the technician: devices, a failed installation test, a 422
    await log_in(page, sys.base, "tech")
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"]')
    await seen.check(page, "devices")
    await page.goto(f"{sys.base}/console/#/device/{PENDANT}")
    await page.wait_for_selector('#tests li[data-state="failed"]')
    assert "inget larm från enheten inom testtiden" in await page.inner_text("#tests")
    await seen.check(page, "device")
    await page.eval_on_selector("#heartbeat", "el => el.removeAttribute('min')")  # past the field's own check
    await page.fill("#heartbeat", "30")
    await page.click("#config-save")
    await page.wait_for_selector("#status.error")
    assert await page.inner_text("#status") == "Fel: Kontrollsignal: minst 60"
    await seen.check(page, "422")
    await page.click("#logout")

    # the patrol's phone
    await log_in(page, sys.base, "pat")
    await page.wait_for_selector(f"#task-{pk['left-1']}")
    task_text = await page.inner_text(f"#task-{pk['left-1']}")
    assert "dörrkod finns hos gruppen" in task_text and "på väg" in task_text
    await seen.check(page, "patrol")
    assert seen.texts, "the walk saw no English from the server at all: the check would prove nothing"
    assert not errors.csp(), errors.messages
    await page.close()


async def test_date_fields_are_iso_in_an_american_browser(
    console_system: ConsoleSystem, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sys = console_system
    async with chromium(tmp_path_factory.mktemp("en-us-profile"), locale="en-US") as ctx:
        page = await open_page(ctx, sys.base)
        assert await page.evaluate("() => navigator.language") == "en-US"
        await log_in(page, sys.base, "op")
        assert await page.evaluate("() => document.documentElement.lang") == "sv"
        await page.goto(f"{sys.base}/console/#/overview?night=2026-11-28")
        await page.wait_for_selector("#timeline")
        assert await page.input_value("#night-date") == "2026-11-28"
        assert await page.get_attribute("#night-date", "placeholder") == "ÅÅÅÅ-MM-DD"
        # what a person sees in the field is the ISO date (a type="date" field would show 11/28/2026)
        shown = await page.evaluate("() => document.getElementById('night-date').value")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown), shown
        # a date typed in another format is refused, not misread
        await page.fill("#night-date", "11/27/2026")
        await page.press("#night-date", "Enter")
        assert await page.evaluate("() => !document.getElementById('night-date').checkValidity()")
        assert page.url.endswith("night=2026-11-28")
        await page.click("#logout")
        await log_in(page, sys.base, "case")
        await page.goto(f"{sys.base}/console/#/log?client=bertil")
        since = await page.input_value("#log-since")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", since), since
        await page.close()
