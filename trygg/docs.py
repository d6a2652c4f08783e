"""``/docs`` without a CDN: Swagger UI from a Python package, under a strict Content-Security-Policy.

FastAPI's default page loads Swagger UI from jsDelivr (blank without internet, which an alarm centre's network
may well be) and starts it with an inline script (no strict CSP possible). Here the assets come from the
``fastapi-offline`` package (Swagger UI 5, kept current by its maintainer; docs/api.md says why this package), the
page is our own, and the start-up script is a file of ours, so ``script-src 'self'`` holds.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"
# Swagger UI sets element styles and uses data: images for its icons; nothing is loaded from elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/start.js"></script>
</body>
</html>
"""

_START = """// Starts Swagger UI on /docs (a file, not an inline script, so the page's CSP can forbid inline scripts).
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets from this process (create the app with ``docs_url=None, redoc_url=None``)."""
    openapi_url = app.openapi_url or "/openapi.json"
    page = _PAGE.format(title=app.title, assets=ASSETS, openapi_url=openapi_url)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=_HEADERS)

    @app.get(f"{ASSETS}/start.js", include_in_schema=False)
    async def start() -> Response:
        return Response(_START, media_type="text/javascript", headers=_HEADERS)

    app.mount(ASSETS, StaticFiles(directory=SWAGGER_DIR), name="docs-assets")
