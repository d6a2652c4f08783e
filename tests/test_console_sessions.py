"""In a real browser: the live feed's token travels in a header, a session ended elsewhere is said at once, a
throttled login is said plainly, and /docs works offline under its CSP (issue 8, points 5, 9 and 15)."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import BrowserContext, Request

from tests import console_fixtures
from tests.console_fixtures import ConsoleSystem, PageErrors, log_in, open_page

browser = console_fixtures.browser
console_system = console_fixtures.console_system
pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_live_feed_header_and_logout_elsewhere(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    page = await open_page(browser, sys.base)
    errors = PageErrors(page)
    feeds: list[Request] = []
    page.on("request", lambda r: feeds.append(r) if "/api/v1/events" in r.url else None)
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/events")) as opened:
        await log_in(page, sys.base, "op")
    assert (await opened.value).ok
    assert feeds and all("token" not in r.url for r in feeds), [r.url for r in feeds]
    assert (await feeds[0].all_headers())["authorization"].startswith("Bearer ")
    await page.wait_for_selector("#live.on")  # the queue's live indicator: the stream said hello

    # the same session is logged out from elsewhere (another tab, an admin): the page says so at once
    token = await page.evaluate("() => JSON.parse(sessionStorage.getItem('trygg.session')).token")
    async with httpx.AsyncClient(base_url=sys.base) as http:
        assert (await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})).status_code == 204
    await page.wait_for_selector("#login-error:text('Du har loggats ut')", timeout=3_000)
    assert errors.csp() == []
    await page.close()


async def test_throttled_login_is_said_plainly(console_system: ConsoleSystem, browser: BrowserContext) -> None:
    sys = console_system
    limit = sys.settings.login_fail_per_account
    async with httpx.AsyncClient(base_url=sys.base) as http:
        for _ in range(limit):
            r = await http.post("/api/v1/auth/token", json={"username": "pat2", "password": "wrong-password-x"})
            assert r.status_code == 401
    page = await open_page(browser, sys.base)
    await page.goto(f"{sys.base}/console/#/login")
    await page.wait_for_selector("#login-form")
    for lang, text in (("sv", "För många misslyckade inloggningar"), ("en", "Too many failed logins")):
        await page.evaluate("l => localStorage.setItem('trygg.lang', l)", lang)
        await page.reload()
        await page.wait_for_selector("#login-form")
        await page.fill("#username", "pat2")
        await page.fill("#password", "wrong-password-x")
        await page.click("#login-submit")
        message = page.locator("#login-error")
        await message.filter(has_text=text).wait_for()
        assert " s" in (await message.text_content() or "")
    await page.close()


@pytest.mark.parametrize("service", ["receiver", "gateway"])
async def test_docs_load_offline_under_csp(
    console_system: ConsoleSystem, browser: BrowserContext, service: str
) -> None:
    base = console_system.base if service == "receiver" else console_system.settings.gateway_url
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.get("/docs")
        assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
        assert "unsafe-eval" not in r.headers["content-security-policy"] and "<script>" not in r.text
        for ref in [*r.text.split('src="')[1:], *r.text.split('href="')[1:]]:
            url = ref.split('"', 1)[0]
            assert url.startswith("/") and not url.startswith("//"), url  # local only: no CDN
            assert (await http.get(url)).status_code == 200, url
    page = await open_page(browser, base)
    errors = PageErrors(page)
    elsewhere: list[str] = []
    page.on("request", lambda req: elsewhere.append(req.url) if not req.url.startswith(base) else None)
    await page.goto(f"{base}/docs")
    await page.locator(".swagger-ui .info .title").filter(has_text="Trygg").wait_for()
    await page.locator(".opblock").first.wait_for()
    assert elsewhere == [] and errors.csp() == [], (elsewhere, errors.messages)
    await page.close()
