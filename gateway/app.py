"""The gateway's HTTP side: its API under /api/v1, health and Prometheus metrics; its lifespan runs the gateway.

Routes are thin and live with their feature (``gateway/<feature>/routes.py`` or ``api.py``); this module mounts
the routers of the features that run and maps every refusal to one body (``wire.ErrorBody``): ``detail`` (English
text), ``code`` (stable, dotted, translated by the console) and ``params``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import metrics
from gateway.api import dead_letters
from gateway.api.deps import TokenChecker
from gateway.checkin.feature import CheckinFeature
from gateway.checkin.routes import router as checkin_router
from gateway.errors import GatewayError, Unauthorized, http_status
from gateway.fleet.api import router as fleet_router
from gateway.fleet.feature import FleetFeature
from gateway.service import Gateway
from trygg.http import bearer, matches_metrics_token, metrics_response, unauthorized
from trygg.settings import Settings
from wire.errors import ErrorBody

log = structlog.get_logger(__name__)

# The routers of features, mounted when the feature runs. A new feature with routes adds one line here.
FEATURE_ROUTERS: tuple[tuple[type[object], APIRouter], ...] = (
    (FleetFeature, fleet_router),
    (CheckinFeature, checkin_router),
)


def _error(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def create_app(settings: Settings, gateway: Gateway | None = None, *, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """``routers``: more routes under /api/v1 (a feature outside this package, a test's)."""
    gw = gateway or Gateway(settings)

    checker = TokenChecker(settings.receiver_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()
            await checker.close()

    app = FastAPI(title="Trygg gateway", version="1", lifespan=lifespan)
    app.state.gateway = gw
    app.state.port = gw.port
    app.state.features = gw.features
    app.state.token_checker = checker
    api = APIRouter(prefix="/api/v1")
    api.include_router(dead_letters.router)
    for cls, router in FEATURE_ROUTERS:
        if any(isinstance(feature, cls) for feature in gw.features):
            api.include_router(router)
    for router in routers:
        api.include_router(router)
    app.include_router(api)

    @app.exception_handler(GatewayError)
    async def refused(request: Request, exc: GatewayError) -> JSONResponse:
        status = http_status(exc)
        log.info("request refused", path=request.url.path, status=status, code=exc.code)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return _error(status, ErrorBody(detail=exc.detail, code=exc.code, params=exc.params), headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            code = "http." + HTTPStatus(exc.status_code).name.lower()
        except ValueError:
            code = "http.error"
        headers = dict(exc.headers) if exc.headers else None
        return _error(exc.status_code, ErrorBody(detail=str(exc.detail), code=code), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.API_REFUSED.labels("invalid").inc()
        return _error(422, ErrorBody(detail=jsonable_encoder(exc.errors()), code="request.invalid"))

    @app.get("/health")
    async def health() -> dict[str, object]:
        connected = gw.core.connected
        return {
            "status": "ok" if connected else "degraded",
            "mqtt_connected": connected,
            "receiver_reachable": gw.forwarder.receiver_reachable,
        }

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if not matches_metrics_token(settings, bearer(request)):
            raise unauthorized()
        return metrics_response()

    return app
