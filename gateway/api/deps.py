"""Dependencies of the gateway's API: the current user (token checked at the receiver), role guards, sessions.

The receiver owns accounts and tokens; the gateway asks it (``GET /api/v1/auth/me``) on every request and
remembers nothing: a logout or an expiry takes effect here at once, and nothing is cached past a token's end.
A console page makes a few gateway calls a minute, so the check costs one loopback request each.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated

import httpx
import structlog
from fastapi import Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.service import Gateway
from trygg.errors import ApiError

log = structlog.get_logger(__name__)
_bearer = HTTPBearer(auto_error=False)
# The receiver's tokens are `secrets.token_urlsafe(32)`: anything else is refused without asking it.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")


@dataclass(frozen=True, slots=True)
class ApiUser:
    username: str
    role: str


def _cannot_check() -> ApiError:
    return ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, "auth.check_unavailable", "cannot check logins right now")


class TokenChecker:
    def __init__(self, receiver_url: str, timeout_s: float = 5.0, verify: ssl.SSLContext | bool = True) -> None:
        self._url = receiver_url.rstrip("/") + "/api/v1/auth/me"
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify)

    async def close(self) -> None:
        await self._http.aclose()

    async def user(self, token: str) -> ApiUser:
        """Who the receiver says holds ``token`` right now; a 401 with the receiver's reason when nobody does."""
        if not _TOKEN_SHAPE.match(token):
            raise _ended("auth.session_ended")
        try:
            resp = await self._http.get(self._url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.error("cannot check a token at the receiver", error=str(exc) or type(exc).__name__)
            raise _cannot_check() from exc
        if resp.status_code == 401:
            code = (
                resp.json().get("code") if resp.headers.get("content-type", "").startswith("application/json") else None
            )
            raise _ended(code if isinstance(code, str) and code.startswith("auth.") else "auth.session_ended")
        if resp.status_code != 200:
            log.error("unexpected answer checking a token", status=resp.status_code)
            raise _cannot_check()
        body = resp.json()
        return ApiUser(username=str(body["username"]), role=str(body["role"]))


def _ended(code: str) -> ApiError:
    return ApiError(401, code, "session expired or ended; log in again", headers={"WWW-Authenticate": "Bearer"})


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_session(gateway: GatewayDep) -> AsyncIterator[AsyncSession]:
    async with gateway.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_current_user(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiUser:
    checker: TokenChecker = request.app.state.token_checker
    if creds is None or creds.scheme.lower() != "bearer":
        raise ApiError(401, "auth.not_logged_in", "not logged in", headers={"WWW-Authenticate": "Bearer"})
    return await checker.user(creds.credentials)


CurrentUser = Annotated[ApiUser, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[ApiUser], ApiUser]:
    """A guard: the user's role must be one of ``roles`` (admin always passes)."""
    allowed = set(roles) | {"admin"}

    def check(user: CurrentUser) -> ApiUser:
        if user.role not in allowed:
            raise ApiError(403, "auth.forbidden", f"role {user.role!r} may not do this", role=user.role)
        return user

    return check
