"""Dependencies as Annotated aliases: SessionDep, ReceiverDep, CurrentUser, and role guards."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver import auth
from alarm_receiver.models import User
from alarm_receiver.service import Receiver
from trygg.errors import ApiError

_bearer = HTTPBearer(auto_error=False)


async def get_receiver(request: Request) -> Receiver:  # async: FastAPI runs a plain def in a thread
    receiver: Receiver = request.app.state.receiver
    return receiver


ReceiverDep = Annotated[Receiver, Depends(get_receiver)]


async def get_session(receiver: ReceiverDep) -> AsyncIterator[AsyncSession]:
    async with receiver.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(code: str, reason: str) -> ApiError:
    return ApiError(status.HTTP_401_UNAUTHORIZED, code, reason, headers={"WWW-Authenticate": "Bearer"})


def request_token(creds: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer token of the Authorization header. Never from the URL (it would end up in logs and history)."""
    if creds is not None and creds.scheme.lower() == "bearer" and creds.credentials:
        return creds.credentials
    return None


async def get_token(creds: BearerDep) -> str:
    token = request_token(creds)
    if not token:
        raise _unauthorized("auth.not_logged_in", "not logged in")
    return token


BearerToken = Annotated[str, Depends(get_token)]


async def get_current_user(request: Request, receiver: ReceiverDep, token: BearerToken) -> User:
    # A session of its own, closed at once: a long response (the live feed) must not hold a connection.
    async with receiver.sessions() as session:
        try:
            user, expires_at = await auth.open_session(session, token)
        except auth.SessionEnded as exc:
            raise _unauthorized(exc.code, "session expired or ended; log in again") from None
    request.state.token_hash = auth.hash_token(token)
    request.state.token_expires_at = expires_at
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: auth.Role) -> Callable[[User], User]:
    allowed = {r.value for r in roles} | {auth.Role.ADMIN.value}

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise ApiError(403, "auth.forbidden", f"role {user.role!r} may not do this", role=user.role)
        return user

    return check


Operator = Annotated[User, Depends(require_roles(auth.Role.OPERATOR))]
QueueReader = Annotated[User, Depends(require_roles(auth.Role.OPERATOR, auth.Role.PATROL))]


async def require_gateway(receiver: ReceiverDep, creds: BearerDep) -> None:
    token = receiver.settings.intake_token
    expected = token.get_secret_value().encode() if token is not None else b""
    if creds is None or not expected or not hmac.compare_digest(creds.credentials.encode(), expected):
        raise _unauthorized("auth.intake_token", "intake needs the gateway's token")


GatewayAuth = Depends(require_gateway)
