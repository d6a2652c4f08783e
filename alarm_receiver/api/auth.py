"""Log in (bearer token), log out, who am I. Logic: alarm_receiver/logins.py and alarm_receiver/auth.py."""

from __future__ import annotations

from fastapi import APIRouter, Request

from alarm_receiver import auth, metrics
from alarm_receiver.api.deps import BearerToken, CurrentUser, ReceiverDep, SessionDep
from alarm_receiver.models import User
from alarm_receiver.schemas import LoginIn, TokenOut, UserOut
from trygg.errors import responses

router = APIRouter(prefix="/auth", tags=["auth"])


def client_address(request: Request) -> str:
    """The TCP peer, or the forwarded client when the peer is one of ``trusted_proxies`` (trygg/serve.py)."""
    return request.client.host if request.client else "unknown"


@router.post("/token", response_model=TokenOut, responses=responses(401, 422, 429))
async def login(body: LoginIn, request: Request, receiver: ReceiverDep) -> TokenOut:
    """401 `auth.bad_credentials`; 429 `auth.login_throttled` or `auth.login_busy` with `Retry-After`."""
    done = await receiver.logins.login(body.username, body.password, client_address(request))
    return TokenOut(access_token=done.token, expires_at=done.expires_at, role=done.role, username=done.username)


@router.post("/logout", status_code=204, responses=responses(401))
async def logout(session: SessionDep, user: CurrentUser, token: BearerToken, receiver: ReceiverDep) -> None:
    """The token stops working at once, here and at the gateway; the user's open live feeds end."""
    await auth.revoke_token(session, token)
    await session.commit()
    metrics.SESSIONS_ENDED.labels("logout").inc()
    receiver.end_session(auth.hash_token(token), "auth.logged_out")


@router.get("/me", response_model=UserOut, responses=responses(401))
async def me(user: CurrentUser) -> User:
    return user
