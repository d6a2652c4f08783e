"""The gateway's HTTP side: its API under /api/v1, health and Prometheus metrics; its lifespan runs the gateway.

Routes are thin and live with their feature (``gateway/<feature>/routes.py`` or ``api.py``); this module mounts
the routers of the features that run and maps every refusal to one body (``wire.ErrorBody``, built by
``trygg/errors.py``): ``detail`` (English text), ``code`` (stable, dotted, translated by the console) and
``params``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gateway import health, metrics
from gateway.api import dead_letters, floods
from gateway.api.deps import TokenChecker
from gateway.checkin.feature import CheckinFeature
from gateway.checkin.routes import router as checkin_router
from gateway.fleet.api import router as fleet_router
from gateway.fleet.feature import FleetFeature
from gateway.locks.feature import LockFeature
from gateway.locks.routes import router as locks_router
from gateway.protocols.dc09.api import router as dc09_router
from gateway.protocols.scaip.api import router as scaip_router
from gateway.protocols.scaip.feature import ScaipFeature
from gateway.service import Gateway
from gateway.voice.feature import VoiceFeature
from gateway.voice.routes import router as voice_router
from trygg.audit import anchor
from trygg.docs import mount_docs
from trygg.errors import install_error_handlers
from trygg.http import bearer, client_tls, matches_metrics_token, metrics_response, unauthorized
from trygg.settings import Settings

log = structlog.get_logger(__name__)

# The routers of features, mounted when the feature runs. A new feature with routes adds one line here.
FEATURE_ROUTERS: tuple[tuple[type[object], APIRouter], ...] = (
    (FleetFeature, fleet_router),
    (CheckinFeature, checkin_router),
    (ScaipFeature, scaip_router),
    (VoiceFeature, voice_router),
    (LockFeature, locks_router),
)


def create_app(settings: Settings, gateway: Gateway | None = None, *, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """``routers``: more routes under /api/v1 (a feature outside this package, a test's)."""
    gw = gateway or Gateway(settings)

    checker = TokenChecker(settings.receiver_url, verify=client_tls(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        anchor_ = anchor.service_checkpointer(gw.sessions, "gateway", settings)
        if anchor_ is not None:
            await anchor_.start()  # signed checkpoints of the supervision log (docs/audit.md)
        try:
            yield
        finally:
            if anchor_ is not None:
                await anchor_.stop()
            await gw.stop()
            await checker.close()

    app = FastAPI(title="Trygg gateway", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.gateway = gw
    app.state.port = gw.port
    app.state.features = gw.features
    mount_docs(app)
    app.state.token_checker = checker
    api = APIRouter(prefix="/api/v1")
    api.include_router(dead_letters.router)
    api.include_router(dc09_router)  # the registry, also while the DC-09 receiver is off
    api.include_router(floods.router)
    for cls, router in FEATURE_ROUTERS:
        if any(isinstance(feature, cls) for feature in gw.features):
            api.include_router(router)
    for router in routers:
        api.include_router(router)
    app.include_router(api)

    # every refusal (the domain errors of gateway/errors.py, guards, validation): one body, counted by code
    install_error_handlers(app, lambda code: metrics.API_REFUSED.labels(code).inc())

    @app.get("/health", responses={503: {"description": "failing: the reasons as codes (gateway/health.py)"}})
    async def health_() -> JSONResponse:
        """200 when the store commits, the MQTT session moves and the backlog is young; else 503 with the reasons
        as codes (gateway/health.py)."""
        found = await health.check(gw.core)
        return JSONResponse(found.body(), status_code=200 if found.ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if not matches_metrics_token(settings, bearer(request)):
            raise unauthorized()
        return metrics_response()

    return app
