"""Users, roles, argon2 password hashes and bearer tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.models import ApiToken, User
from alarm_receiver.passwords import WeakPassword, check_password
from trygg.db import utcnow

__all__ = ["AuthError", "Role", "WeakPassword", "create_user", "ensure_user", "hasher", "issue_token"]

# argon2id with the RFC 9106 low-memory parameters (t=3, 64 MiB), one lane: a check takes one core, so the hash
# threads (alarm_receiver/logins.py) leave the other cores to the alarms. Older hashes are redone at the next login.
hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)
# Verifying against this keeps the time of a login with an unknown username like that of a known one.
DUMMY_HASH = hasher.hash("not-a-real-password")


class Role(StrEnum):
    OPERATOR = "operator"
    PATROL = "patrol"
    TECHNICIAN = "technician"
    CASE_OFFICER = "case_officer"
    ADMIN = "admin"


class AuthError(ValueError):
    pass


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _checked_hash(username: str, password: str, min_length: int) -> str:
    """The hash of an acceptable password; ``WeakPassword`` (with its code) for one that is not."""
    check_password(password, username, min_length=min_length)
    return hasher.hash(password)


async def create_user(
    session: AsyncSession,
    username: str,
    password: str,
    role: Role,
    display_name: str | None = None,
    *,
    min_length: int = 12,
) -> User:
    """A new account; the password must pass alarm_receiver/passwords.py (else ``WeakPassword``)."""
    if not username or len(username) > 64:
        raise AuthError("username must be 1-64 characters")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AuthError(f"user {username!r} exists")
    password_hash = _checked_hash(username, password, min_length)
    user = User(username=username, password_hash=password_hash, role=role.value, display_name=display_name)
    session.add(user)
    await session.flush()
    return user


async def issue_token(session: AsyncSession, user: User, ttl_s: int) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=ttl_s)
    session.add(ApiToken(token_hash=hash_token(token), user_id=user.id, expires_at=expires))
    await session.flush()
    return token, expires


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    found = await session_for_token(session, token)
    return found[0] if found is not None else None


class SessionEnded(Exception):
    """A token that opens no session; ``code`` says why: auth.session_expired, auth.logged_out, auth.session_ended."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


async def session_for_token(session: AsyncSession, token: str) -> tuple[User, datetime] | None:
    """The token's user and the moment its session ends; None when unknown, revoked, expired or disabled."""
    try:
        return await open_session(session, token)
    except SessionEnded:
        return None


async def open_session(session: AsyncSession, token: str) -> tuple[User, datetime]:
    """The token's user and the moment its session ends, or :class:`SessionEnded` with the reason."""
    row = await session.execute(
        select(User, ApiToken.expires_at, ApiToken.revoked_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token))
    )
    found = row.first()
    if found is None:
        raise SessionEnded("auth.session_ended")
    user, expires_at, revoked_at = found
    if revoked_at is not None:
        raise SessionEnded("auth.logged_out")
    if expires_at <= utcnow():
        raise SessionEnded("auth.session_expired")
    if user.disabled:
        raise SessionEnded("auth.session_ended")
    return user, expires_at


async def revoke_token(session: AsyncSession, token: str) -> None:
    await session.execute(update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(revoked_at=utcnow()))


async def ensure_user(session: AsyncSession, username: str, password: str, role: Role) -> User:
    """Create the user, or give an existing one this password and role (used by the demo)."""
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        return await create_user(session, username, password, role)
    user.password_hash = _checked_hash(username, password, 12)
    user.role = role.value
    user.disabled = False
    return user
