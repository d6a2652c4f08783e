"""Dependencies of the gateway's API as ``Annotated`` aliases: the port, a store session, the running features,
the current user (token checked at the receiver) and role guards.

The receiver owns accounts and tokens; the gateway asks it (``GET /api/v1/auth/me``) and remembers the answer
for ``token_check_cache_s`` (10 s), so a logout or an expired token takes effect here within that time.
Refusals are domain errors (``gateway/errors.py``), mapped to HTTP by the app's one handler.
"""

from __future__ import annotations

import hashlib
import time
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


class TokenChecker:
    def __init__(self, receiver_url: str, cache_s: float = 10.0, timeout_s: float = 5.0) -> None:
        self._url = receiver_url.rstrip("/") + "/api/v1/auth/me"
        self._cache: dict[str, tuple[float, ApiUser | None]] = {}
        self._cache_s = cache_s
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def user(self, token: str) -> ApiUser | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            resp = await self._http.get(self._url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            log.error("cannot check a token at the receiver", error=str(exc) or type(exc).__name__)
            raise Unavailable("auth.unavailable", "cannot check logins right now") from exc
        user: ApiUser | None = None
        if resp.status_code == 200:
            body = resp.json()
            user = ApiUser(username=str(body["username"]), role=str(body["role"]))
        elif resp.status_code != 401:
            log.error("unexpected answer checking a token", status=resp.status_code)
            raise Unavailable("auth.unavailable", "cannot check logins right now")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self._cache_s, user)
        return user


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
        raise Unauthorized("auth.required", "not logged in")
    user = await checker.user(creds.credentials)
    if user is None:
        raise Unauthorized("auth.expired", "session expired or token unknown; log in again")
    return user


CurrentUser = Annotated[ApiUser, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[ApiUser], ApiUser]:
    """A guard: the user's role must be one of ``roles`` (admin always passes)."""
    allowed = set(roles) | {"admin"}

    def check(user: CurrentUser) -> ApiUser:
        if user.role not in allowed:
            raise Forbidden("auth.forbidden", f"role {user.role!r} may not do this", role=user.role)
        return user

    return check
