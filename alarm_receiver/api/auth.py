"""Log in (bearer token), log out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request

from alarm_receiver import auth
from alarm_receiver.api.deps import BearerDep, CurrentUser, ReceiverDep, SessionDep, request_token
from alarm_receiver.models import User
from alarm_receiver.schemas import LoginIn, TokenOut, UserOut
from trygg.errors import ApiError

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=TokenOut)
async def login(body: LoginIn, session: SessionDep, receiver: ReceiverDep) -> TokenOut:
    user = await auth.authenticate(session, body.username, body.password)
    if user is None:
        raise ApiError(401, "auth.bad_login", "wrong username or password")
    token, expires = await auth.issue_token(session, user, receiver.settings.token_ttl_s)
    await session.commit()
    return TokenOut(access_token=token, expires_at=expires, role=user.role, username=user.username)


@router.post("/logout", status_code=204)
async def logout(request: Request, session: SessionDep, user: CurrentUser, creds: BearerDep) -> None:
    token = request_token(request, creds)
    if token:
        await auth.revoke_token(session, token)
        await session.commit()


@router.get("/me", response_model=UserOut)
async def me(user: CurrentUser) -> User:
    return user
