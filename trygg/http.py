"""HTTP pieces both services share: the Prometheus endpoint behind a bearer token."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trygg.errors import ApiError
from trygg.settings import Settings


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def matches_metrics_token(settings: Settings, token: str | None) -> bool:
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    return bool(expected and token and hmac.compare_digest(token.encode(), expected.encode()))


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def unauthorized() -> HTTPException:
    return ApiError(401, "auth.metrics_token", "metrics need a bearer token", headers={"WWW-Authenticate": "Bearer"})
