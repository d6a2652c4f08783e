"""The gateway's small HTTP side: health and Prometheus metrics; its lifespan runs the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway import metrics
from gateway.api.deps import TokenChecker
from gateway.service import Gateway
from trygg.audit import anchor
from trygg.docs import mount_docs
from trygg.errors import install_error_handlers
from trygg.http import bearer, client_tls, matches_metrics_token, metrics_response, unauthorized
from trygg.settings import Settings


def create_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
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
    mount_docs(app)
    app.state.token_checker = checker
    api = APIRouter(prefix="/api/v1")
    for feature in gw.features:
        router = feature.router()
        if router is not None:
            api.include_router(router)
    app.include_router(api)

    install_error_handlers(app, lambda code: metrics.API_REFUSED.labels(code).inc())

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok" if gw.connected.is_set() else "degraded",
            "mqtt_connected": gw.connected.is_set(),
            "receiver_reachable": gw.forwarder.receiver_reachable,
        }

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if not matches_metrics_token(settings, bearer(request)):
            raise unauthorized()
        return metrics_response()

    return app
