"""``/gw/api/v1/...`` on the receiver is the gateway's API (devices, consents, check-ins, camera looks).

The console is served by the receiver, so the browser talks to one origin with one login; the receiver passes
requests on to the gateway with the user's own bearer token, which the gateway checks at the receiver.
"""

from __future__ import annotations

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from alarm_receiver.api.deps import ReceiverDep
from trygg.errors import ApiError

log = structlog.get_logger(__name__)
router = APIRouter(tags=["gateway"], include_in_schema=False)

_PASSED_HEADERS = ("authorization", "content-type", "accept")


@router.api_route("/gw/api/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def to_gateway(path: str, request: Request, receiver: ReceiverDep) -> Response:
    url = f"{receiver.settings.gateway_url.rstrip('/')}/api/v1/{path}"
    headers = {k: v for k, v in request.headers.items() if k.lower() in _PASSED_HEADERS}
    try:
        upstream = await receiver.gateway_http.request(
            request.method, url, params=request.query_params, headers=headers, content=await request.body()
        )
    except httpx.HTTPError as exc:
        log.error("gateway unreachable", path=path, error=str(exc) or type(exc).__name__)
        # answered, counted and logged by trygg/errors.py like every refusal
        raise ApiError(503, "gateway.unreachable", "the gateway cannot be reached right now") from exc
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type"),
    )
