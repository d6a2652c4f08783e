"""Dependencies as Annotated aliases: SessionDep, ReceiverDep, CurrentUser, and role guards."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver import auth, metrics
from alarm_receiver.models import User
from alarm_receiver.service import Receiver

_bearer = HTTPBearer(auto_error=False)


def get_receiver(request: Request) -> Receiver:
    receiver: Receiver = request.app.state.receiver
    return receiver


ReceiverDep = Annotated[Receiver, Depends(get_receiver)]


async def get_session(receiver: ReceiverDep) -> AsyncIterator[AsyncSession]:
    async with receiver.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(reason: str) -> HTTPException:
    metrics.REJECTED_REQUESTS.labels("unauthorized").inc()
    return HTTPException(status.HTTP_401_UNAUTHORIZED, reason, headers={"WWW-Authenticate": "Bearer"})


def request_token(request: Request, creds: HTTPAuthorizationCredentials | None) -> str | None:
    if creds is not None and creds.scheme.lower() == "bearer":
        return creds.credentials
    # EventSource cannot send headers: the live feed also takes ?access_token=
    if request.url.path.endswith("/events"):
        return request.query_params.get("access_token")
    return None


async def get_current_user(request: Request, receiver: ReceiverDep, creds: BearerDep) -> User:
    token = request_token(request, creds)
    if not token:
        raise _unauthorized("not logged in")
    # A session of its own, closed at once: a long response (the live feed) must not hold a connection.
    async with receiver.sessions() as session:
        user = await auth.user_for_token(session, token)
    if user is None:
        raise _unauthorized("session expired or token unknown; log in again")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: auth.Role) -> Callable[[User], User]:
    allowed = {r.value for r in roles} | {auth.Role.ADMIN.value}

    def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            metrics.REJECTED_REQUESTS.labels("forbidden").inc()
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role!r} may not do this")
        return user

    return check


Operator = Annotated[User, Depends(require_roles(auth.Role.OPERATOR))]
QueueReader = Annotated[User, Depends(require_roles(auth.Role.OPERATOR, auth.Role.PATROL))]


def require_gateway(receiver: ReceiverDep, creds: BearerDep) -> None:
    token = receiver.settings.intake_token
    expected = token.get_secret_value().encode() if token is not None else b""
    if creds is None or not expected or not hmac.compare_digest(creds.credentials.encode(), expected):
        raise _unauthorized("intake needs the gateway's token")


GatewayAuth = Depends(require_gateway)
