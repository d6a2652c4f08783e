"""The receiver's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from alarm_receiver import metrics
from alarm_receiver.api import alarms, auth, clients, events, gateway_proxy, intake, locks, overview, routing, voice
from alarm_receiver.console import mount_console
from alarm_receiver.logins import LoginGuard
from alarm_receiver.service import Receiver
from trygg.audit import anchor
from trygg.docs import mount_docs
from trygg.errors import install_error_handlers
from trygg.http import bearer, matches_metrics_token, metrics_response, unauthorized
from trygg.settings import Settings

log = structlog.get_logger(__name__)


def create_app(settings: Settings, receiver: Receiver | None = None, *, run_migrations: bool = True) -> FastAPI:
    rec = receiver or Receiver(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await rec.start(run_migrations=run_migrations)
        anchor_ = anchor.service_checkpointer(rec.sessions, "receiver", settings)
        if anchor_ is not None:
            await anchor_.start()  # signed checkpoints of the supervision log (docs/audit.md)
        try:
            yield
        finally:
            if anchor_ is not None:
                await anchor_.stop()
            await rec.stop()

    app = FastAPI(title="Trygg alarm receiver", version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.receiver = rec
    mount_docs(app)

    api = APIRouter(prefix="/api/v1")
    for module in (auth, alarms, intake, events, overview, voice, clients, routing, locks):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(gateway_proxy.router)
    mount_console(app)

    def refused(code: str) -> None:
        metrics.REJECTED_REQUESTS.labels(code).inc()

    # every refusal, the queue's QueueError included: one body, counted by code, logged without text
    install_error_handlers(app, refused)
    app.add_middleware(LoginGuard, logins=rec.logins, refused=refused)  # outermost: a throttled flood stops here

    @app.get("/health", tags=["health"], responses={503: {"description": "the store does not commit (codes)"}})
    async def health() -> JSONResponse:
        """200 while the store commits; 503 with the reasons as codes otherwise (alarm_receiver/health.py)."""
        problems = await rec.store_health.problems()
        body = {
            "status": "failing" if problems else "ok",
            "problems": problems,
            "mqtt_connected": any(c.is_connected for c in rec.clients),  # a broker notices can go to
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        token = bearer(request)
        if not matches_metrics_token(settings, token):
            from alarm_receiver.auth import user_for_token

            async with rec.sessions() as session:
                user = await user_for_token(session, token) if token else None
            if user is None or user.role not in ("admin", "technician"):
                raise unauthorized()
        return metrics_response()

    return app
