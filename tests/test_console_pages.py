"""The console's shell and the other pages in a real browser: CSP, login per role, logout, expiry, language;
access rules; technician pages (filters, install test, config); consents and the printable log; the night
overview. Saves screenshots to docs/screenshots/."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from playwright.async_api import BrowserContext

from alarm_receiver.console import CSP
from tests import console_fixtures
from tests.console_fixtures import (
    CAMERA,
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


async def test_shell_csp_roles_logout_expiry_language(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    async with httpx.AsyncClient(base_url=sys.base) as http:
        r = await http.get("/")
        assert r.status_code == 307 and r.headers["location"] == "/console/"
        r = await http.get("/console/")
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "<script>" not in r.text and " style=" not in r.text
        cfg = (await http.get("/console/config.json")).json()
        assert cfg["loopback_only"] is True
        assert "content-security-policy" not in (await http.get("/health")).headers

    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    # logged out: sent to login
    await page.goto(f"{sys.base}/console/#/queue")
    await page.wait_for_selector("#login-form")
    assert page.url.endswith("#/login")
    await page.fill("#username", "op")
    await page.fill("#password", "wrong")
    await page.click("#login-submit")
    await page.wait_for_selector("#login-error:text('Fel användarnamn eller lösenord')")
    await screenshot(page, "login")

    for user, landing in (
        ("op", "queue"),
        ("pat", "patrol"),
        ("tech", "devices"),
        ("case", "consents"),
        ("admin", "queue"),
    ):
        await log_in(page, sys.base, user)
        await page.wait_for_function(f"() => document.body.dataset.page === '{landing}'")
        assert page.url.endswith(f"#/{landing}"), (user, page.url)
        await page.click("#logout")
        await page.wait_for_selector("#login-form")

    # logout revokes the token
    await log_in(page, sys.base, "op")
    token = await page.evaluate("() => JSON.parse(sessionStorage.getItem('trygg.session')).token")
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/logout")) as revoked:
        await page.click("#logout")
    assert (await revoked.value).ok
    await page.wait_for_selector("#login-form")
    async with httpx.AsyncClient(base_url=sys.base) as http:
        assert (await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 401

    # an expired session (expires_at passed) and an unknown token (401 from the API) both go to login
    await log_in(page, sys.base, "op")
    await page.evaluate(
        """() => { const s = JSON.parse(sessionStorage.getItem('trygg.session'));
                   s.expires_at = new Date(Date.now() - 1000).toISOString();
                   sessionStorage.setItem('trygg.session', JSON.stringify(s)); }"""
    )
    await page.goto(f"{sys.base}/console/#/overview")
    await page.wait_for_selector("#login-form")
    await page.wait_for_selector("#login-error:text('Sessionen har gått ut')")  # said, not silent
    await screenshot(page, "login-session-expired")
    assert page.url.endswith("#/login?reason=expired")
    # a session that expires while the page is open: to login, with the reason
    await log_in(page, sys.base, "op")
    await page.evaluate(
        """() => { const s = JSON.parse(sessionStorage.getItem('trygg.session'));
                   s.expires_at = new Date(Date.now() + 1500).toISOString();
                   sessionStorage.setItem('trygg.session', JSON.stringify(s)); }"""
    )
    await page.reload()  # the queue, then (the page's own timer) the login with the reason
    await page.wait_for_selector("#login-error:text('Sessionen har gått ut')", timeout=10_000)
    # logging out says so too, in its own words
    await log_in(page, sys.base, "op")
    await page.click("#logout")
    await page.wait_for_selector("#login-error:text('Du är utloggad')")
    await log_in(page, sys.base, "op")
    await page.evaluate(
        """() => { const s = JSON.parse(sessionStorage.getItem('trygg.session'));
                   s.token = 'not-a-token'; sessionStorage.setItem('trygg.session', JSON.stringify(s)); }"""
    )
    await page.goto(f"{sys.base}/console/#/overview")
    await page.wait_for_selector("#login-form")
    await page.wait_for_selector("#login-error:text('Sessionen har avslutats')")  # auth.session_ended

    # language: Swedish by default, English on the switch, remembered
    await log_in(page, sys.base, "op")
    assert await page.inner_text("h1") == "Larmkö"
    await page.click("#lang")
    await page.wait_for_selector("h1:text('Alarm queue')")
    assert await page.evaluate("() => localStorage.getItem('trygg.lang')") == "en"
    await page.reload()
    await page.wait_for_selector("h1:text('Alarm queue')")
    await page.click("#lang")
    await page.wait_for_selector("h1:text('Larmkö')")
    # every text exists in both languages (the console's own and the server's codes)
    for module, name in (("i18n.js", "dictionaries"), ("messages.js", "messageDictionaries")):
        missing = await page.evaluate(
            """async ([m, n]) => { const d = (await import(`/console/${m}`))[n];
               const sv = Object.keys(d.sv), en = Object.keys(d.en);
               return { sv: en.filter((k) => !sv.includes(k)), en: sv.filter((k) => !en.includes(k)) }; }""",
            [module, name],
        )
        assert missing == {"sv": [], "en": []}, module
    assert not errors.csp(), errors.messages
    await page.close()


async def test_access_rules(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    page = await open_page(browser, sys.base)
    await log_in(page, sys.base, "tech")
    for route in ("checkin/1", "queue", "consents", "log"):
        await page.goto(f"{sys.base}/console/#/{route}")
        await page.wait_for_selector("#forbidden")
    assert await page.query_selector("video") is None
    await page.click("#logout")
    await page.wait_for_selector("#login-form")
    # an operator reads consents but cannot create or change them (page and API)
    await log_in(page, sys.base, "op")
    await page.goto(f"{sys.base}/console/#/consents")
    await page.wait_for_selector("#read-only")
    assert await page.query_selector("#new-consent") is None
    assert await page.query_selector("[id^=change-]") is None
    status = await page.evaluate(
        """async () => { const s = JSON.parse(sessionStorage.getItem('trygg.session'));
           const r = await fetch('/gw/api/v1/consents', {method: 'POST', headers: {'Authorization':
             `Bearer ${s.token}`, 'Content-Type': 'application/json'}, body: JSON.stringify({client_ref: 'x',
             camera_id: 'cam1', consented_by: [{name: 'X', role: 'client'}], basis: 'b'})});
           return r.status; }"""
    )
    assert status == 403
    await page.close()


async def test_technician_consents_log_overview(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    await log_in(page, sys.base, "tech")
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"]')
    await page.wait_for_selector(f'#devices tr[data-id="{CAMERA}"]')
    await screenshot(page, "devices")
    await page.check("#flag-offline")
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"]', state="detached")
    await page.uncheck("#flag-offline")
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"]')
    # a pendant runs on its battery alone: no mains to lose, and not in the mains-lost filter
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"] .c-mains:text("ingen (batteridriven)")')
    await page.check("#flag-mains_lost")
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"]', state="detached")
    await page.wait_for_selector("#devices-msg:text('Inga enheter matchar')")
    await page.uncheck("#flag-mains_lost")
    await page.wait_for_selector(f'#devices tr[data-id="{PENDANT}"]')

    # device detail: configuration, then an installation test passed by a real press
    await page.click(f"text={PENDANT}")
    await page.wait_for_selector("#config-form")
    await page.fill("#heartbeat", "120")
    await page.click("#config-save")
    await page.wait_for_selector("#status:text('version')")
    await sys.pendant.wait_config(1, 5)
    await page.click("#start-test")
    await page.wait_for_selector('#tests li[data-state="waiting"]')
    await sys.pendant.press()
    await page.wait_for_selector('#tests li[data-state="passed"]', timeout=10_000)
    await screenshot(page, "device")
    await page.click("#logout")
    await page.wait_for_selector("#login-form")

    # consents: create, change, skip a night, withdraw; the printable log
    await log_in(page, sys.base, "case")
    await page.fill("#c-client_ref", "cecilia")
    await page.fill("#c-camera_id", "cam2")
    await page.fill("#c-name", "Cecilia")
    await page.fill("#c-basis", "beslut 2026-0099")
    await page.click("#c-create")
    await page.wait_for_selector("#status:text('kamera'), #status:text('cam2')")
    assert "cam2" in await page.inner_text("#status")  # a readable refusal: no such camera
    await page.fill("#c-camera_id", CAMERA)
    await page.fill("#c-client_ref", "bertil")
    await page.click("#c-create")
    row = await page.wait_for_selector("#consents tr:has-text('bertil'):not(.withdrawn)")
    assert row is not None
    cid = await row.get_attribute("data-id")
    await page.click(f"#change-{cid}")
    await page.fill("#f-times", "23:30, 04:00")
    await page.click("#dialog-ok")
    await page.wait_for_selector(f"#consent-{cid} .c-times:text('04:00')")
    await page.click(f"#skip-{cid}")
    await page.click("#dialog-ok")
    await page.wait_for_selector("#status:text('hoppas över')")
    await screenshot(page, "consents")
    await page.click(f"#withdraw-{cid}")
    await page.fill("#f-reason", "brukaren vill avsluta")
    await page.click("#dialog-ok")
    await page.wait_for_selector(f"#consent-{cid}.withdrawn")

    await page.goto(f"{sys.base}/console/#/log?client=bertil")
    await page.wait_for_selector('#log tr[data-action="consent.withdrawn"], #log tr[data-action^="consent"]')
    actions = await page.eval_on_selector_all("#log tr", "els => els.map(e => e.dataset.action)")
    assert any(a and a.startswith("consent") for a in actions), actions
    await page.emulate_media(media="print")
    assert await page.is_hidden("#log-form") and await page.is_hidden("#top")
    await screenshot(page, "log-print")
    await page.emulate_media(media="screen")
    await page.click("#logout")
    await page.wait_for_selector("#login-form")

    # the night overview (operators)
    await log_in(page, sys.base, "op")
    await page.goto(f"{sys.base}/console/#/overview")
    await page.wait_for_selector("#timeline")
    await page.wait_for_selector("#by-type rect")
    assert "assistance" not in (await page.inner_text("#figures"))
    await screenshot(page, "overview")
    # choose a night: the one before the current, then a date typed in, then back to the last hours
    current = await page.input_value("#night-date")
    await page.click("#night-prev")
    await page.wait_for_selector("h1:text('Natten från')")
    before = (date.fromisoformat(current) - timedelta(days=1)).isoformat()
    assert page.url.endswith(f"#/overview?night={before}")
    assert await page.input_value("#night-date") == before
    await page.wait_for_selector("#timeline")
    await page.fill("#night-date", "2026-03-28")
    await page.press("#night-date", "Enter")
    await page.wait_for_selector("h1:text('Natten från 2026-03-28')")
    assert (await page.inner_text("#period")).startswith("2026-03-28 20:00:00\u201308:00")  # Stockholm time
    await page.click("#night-latest")
    await page.wait_for_selector("h1:text('Nattöversikt')")
    assert await page.is_disabled("#night-latest")
    assert not errors.csp(), errors.messages
    await page.close()
