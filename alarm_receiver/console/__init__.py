"""The web console: plain ES modules served by the receiver at ``/console/`` (docs/console.md).

One origin, one login for every role: the pages call the receiver's API (``/api/v1/...``) and the gateway's
through the receiver's proxy (``/gw/api/v1/...``). Every console response carries a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alarm_receiver.queue import OPEN_STATES
from devices.types import TASK_TYPES, TECHNICAL_ALARM_TYPES

STATIC_DIR = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def console_config(app: FastAPI) -> dict[str, object]:
    """What the pages need to know of the settings and the domain's lists (nothing secret): one source of truth,
    served, so the console's JavaScript holds no copy of them (static/config.js)."""
    settings = app.state.receiver.settings
    return {
        # Test and demo setups gather ICE on loopback only: the page then keeps only 127.0.0.1 UDP candidates.
        "loopback_only": list(settings.webrtc_host_addresses) == ["127.0.0.1"],
        "timezone": settings.timezone,  # times and dates on every page are shown in this zone
        "default_language": "sv",
        "open_states": [s.value for s in OPEN_STATES],
        "technical_types": sorted(t.value for t in TECHNICAL_ALARM_TYPES),
        "task_types": sorted(t.value for t in TASK_TYPES),
    }


_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


class ConsoleHeaders:
    """The CSP and its companions on console responses. Plain ASGI (not ``@app.middleware``, whose per-request
    task and streams cost every request, the gateway's intake included, a share of a millisecond)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/" or path == "/console" or path.startswith("/console/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in _HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": [*kept, *_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def mount_console(app: FastAPI) -> None:
    """Serve the console at /console/, redirect / there, and set the CSP header on console responses."""

    app.add_middleware(ConsoleHeaders)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/console/config.json", include_in_schema=False)
    async def config() -> JSONResponse:
        return JSONResponse(console_config(app))

    app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")


__all__ = ["CSP", "STATIC_DIR", "mount_console"]
