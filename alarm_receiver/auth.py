"""Users, roles, argon2 password hashes and bearer tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.models import ApiToken, User
from trygg.db import utcnow

_hasher = PasswordHasher()
# Verifying against this keeps the time of a login with an unknown username like that of a known one.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


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


async def create_user(
    session: AsyncSession, username: str, password: str, role: Role, display_name: str | None = None
) -> User:
    if not username or len(username) > 64:
        raise AuthError("username must be 1-64 characters")
    if len(password) < 8:
        raise AuthError("password must be at least 8 characters")
    if await session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AuthError(f"user {username!r} exists")
    user = User(username=username, password_hash=_hasher.hash(password), role=role.value, display_name=display_name)
    session.add(user)
    await session.flush()
    return user


async def authenticate(session: AsyncSession, username: str, password: str) -> User | None:
    user = await session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


async def issue_token(session: AsyncSession, user: User, ttl_s: int) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(seconds=ttl_s)
    session.add(ApiToken(token_hash=hash_token(token), user_id=user.id, expires_at=expires))
    await session.flush()
    return token, expires


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    row = await session.execute(
        select(User, ApiToken.expires_at, ApiToken.revoked_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token))
    )
    found = row.first()
    if found is None:
        return None
    user, expires_at, revoked_at = found
    if revoked_at is not None or expires_at <= utcnow() or user.disabled:
        return None
    return user


async def revoke_token(session: AsyncSession, token: str) -> None:
    await session.execute(update(ApiToken).where(ApiToken.token_hash == hash_token(token)).values(revoked_at=utcnow()))


async def ensure_user(session: AsyncSession, username: str, password: str, role: Role) -> User:
    """Create the user, or give an existing one this password and role (used by the demo)."""
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        return await create_user(session, username, password, role)
    user.password_hash = _hasher.hash(password)
    user.role = role.value
    user.disabled = False
    return user
