"""Dependencies of the gateway's API as ``Annotated`` aliases: the port, a store session, the running features,
the current user (token checked at the receiver) and role guards.

The receiver owns accounts and tokens; the gateway asks it (``GET /api/v1/auth/me``) on every request and
remembers nothing: a logout or an expiry takes effect here at once, and nothing is cached past a token's end.
A console page makes a few gateway calls a minute, so the check costs one loopback request each. A refused token
is refused with the receiver's own code (``auth.session_expired``, ``auth.logged_out``, ``auth.session_ended``),
so the console can say why the session ended. Refusals are domain errors (``gateway/errors.py``), mapped to HTTP
by the app's one handler.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, TypeVar

import httpx
import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import Forbidden, Unauthorized, Unavailable
from gateway.port import GatewayPort
from gateway.users import ApiUser

__all__ = ["ApiUser", "CurrentUser", "PortDep", "SessionDep", "TokenChecker", "feature", "require_roles"]

log = structlog.get_logger(__name__)
_bearer = HTTPBearer(auto_error=False)
F = TypeVar("F")
# The receiver's tokens are `secrets.token_urlsafe(32)`: anything else is refused without asking it.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")


def _cannot_check() -> Unavailable:
    return Unavailable("auth.check_unavailable", "cannot check logins right now")


class TokenChecker:
    def __init__(self, receiver_url: str, timeout_s: float = 5.0, verify: ssl.SSLContext | bool = True) -> None:
        self._url = receiver_url.rstrip("/") + "/api/v1/auth/me"
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify)

    async def close(self) -> None:
        await self._http.aclose()

    async def user(self, token: str) -> ApiUser:
        """Who the receiver says holds ``token`` right now; a 401 with the receiver's reason when nobody does."""
        if not _TOKEN_SHAPE.match(token):
            raise Unauthorized("auth.session_ended", "session expired or ended; log in again")
        try:
            resp = await self._http.get(self._url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.error("cannot check a token at the receiver", error=str(exc) or type(exc).__name__)
            raise _cannot_check() from exc
        if resp.status_code == 401:
            code = (
                resp.json().get("code") if resp.headers.get("content-type", "").startswith("application/json") else None
            )
            raise Unauthorized(
                code if isinstance(code, str) and code.startswith("auth.") else "auth.session_ended",
                "session expired or ended; log in again",
            )
        if resp.status_code != 200:
            log.error("unexpected answer checking a token", status=resp.status_code)
            raise _cannot_check()
        body = resp.json()
        return ApiUser(username=str(body["username"]), role=str(body["role"]))


def get_port(request: Request) -> GatewayPort:
    port: GatewayPort = request.app.state.port
    return port


PortDep = Annotated[GatewayPort, Depends(get_port)]


async def get_session(port: PortDep) -> AsyncIterator[AsyncSession]:
    async with port.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def feature(cls: type[F]) -> Callable[[Request], F]:
    """A dependency giving the running feature of class ``cls`` (``Annotated[Cls, Depends(feature(Cls))]``)."""

    def get(request: Request) -> F:
        running: Sequence[object] = request.app.state.features
        for candidate in running:
            if isinstance(candidate, cls):
                return candidate
        raise Unavailable("feature.not_running", f"{cls.__name__} is not running in this gateway", feature=cls.__name__)

    return get


async def get_current_user(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiUser:
    checker: TokenChecker = request.app.state.token_checker
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthorized("auth.not_logged_in", "not logged in")
    return await checker.user(creds.credentials)


CurrentUser = Annotated[ApiUser, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[ApiUser], ApiUser]:
    """A guard: the user's role must be one of ``roles`` (admin always passes)."""
    allowed = set(roles) | {"admin"}

    def check(user: CurrentUser) -> ApiUser:
        if user.role not in allowed:
            raise Forbidden("auth.forbidden", f"role {user.role!r} may not do this", role=user.role)
        return user

    return check
