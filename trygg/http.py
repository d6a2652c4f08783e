"""HTTP pieces both services share: database ids in paths, TLS for calls between them, /metrics.

Refusals and their format are ``trygg/errors.py``.
"""

from __future__ import annotations

import hmac
import ssl
from typing import Annotated

from fastapi import HTTPException, Path, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trygg.errors import ApiError
from trygg.settings import Settings

# Primary keys are 32-bit INTEGER columns on PostgreSQL: a larger id can name no row, and asking the database for
# one fails (asyncpg: "value out of int32 range") instead of finding nothing. So a path id is 1 .. 2**31 - 1,
# anything else is a 422 before any query.
MAX_DB_ID = 2**31 - 1
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="a database id (1 to 2147483647)")]


# --- calls between the services ---------------------------------------------------------------------------------
def client_tls(settings: Settings) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for calls to the other service: ``http_ca_file`` when set, else the system's CA store."""
    if settings.http_ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(settings.http_ca_file))


# --- /metrics ---------------------------------------------------------------------------------------------------
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
