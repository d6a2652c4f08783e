"""Unlock grants for digital locks: short-lived, signed by the receiver, verified by the gateway.

A grant binds one (alarm, lock, patrol) until ``exp``. The receiver signs it with an Ed25519 key only it holds
(``lock_grant_signing_key_file``); the gateway, the internet-facing service, holds only public keys
(``lock_grant_public_keys``), so it can check grants but never make one. Text form:
``base64url(JSON claims) "." base64url(signature over the first part)``. Keys are made and printed like the
supervision log's (``trygg log keygen``). Nothing here knows either service: it is a kernel piece both use.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trygg.audit.anchor import key_id, public_key_text
from trygg.errors import CodedError

MAX_GRANT_CHARS = 2048


class GrantRefused(CodedError):
    status = 403


@dataclass(frozen=True, slots=True)
class Grant:
    alarm: int  # the receiver's alarm id
    lock: str  # the lock's device id
    patrol: str  # the username of the patrol it was issued to
    iat: float  # issued, POSIX seconds
    exp: float  # expires, POSIX seconds
    jti: str  # the grant's own id (in both logs)
    kid: str  # which key signed it


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(
    key: Ed25519PrivateKey, *, alarm: int, lock: str, patrol: str, ttl_s: float, now: datetime
) -> tuple[Grant, str]:
    iat = now.astimezone(UTC).timestamp()
    grant = Grant(
        alarm=alarm,
        lock=lock,
        patrol=patrol,
        iat=iat,
        exp=iat + ttl_s,
        jti=secrets.token_urlsafe(12),
        kid=key_id(public_key_text(key.public_key())),
    )
    body = _b64(json.dumps(asdict(grant), sort_keys=True, separators=(",", ":")).encode())
    return grant, f"{body}.{_b64(key.sign(body.encode()))}"


def verify(text: str, keys: dict[str, Ed25519PublicKey], *, lock: str, patrol: str, now: datetime) -> Grant:
    """The grant, if it is well formed, signed by a trusted key, not expired, and for this lock and this patrol;
    otherwise ``GrantRefused`` with a code (``lock.grant_invalid``, ``lock.grant_expired``,
    ``lock.grant_other_lock``, ``lock.grant_other_patrol``)."""
    try:
        if len(text) > MAX_GRANT_CHARS:
            raise ValueError("too long")
        body, _, sig = text.partition(".")
        claims: dict[str, Any] = json.loads(_unb64(body))
        grant = Grant(**claims)
        public = keys[grant.kid]
        public.verify(_unb64(sig), body.encode())
    except (ValueError, TypeError, KeyError, InvalidSignature):
        raise GrantRefused("lock.grant_invalid", "the unlock grant is not valid") from None
    if now.astimezone(UTC).timestamp() >= grant.exp:
        raise GrantRefused("lock.grant_expired", "the unlock grant has expired", alarm=grant.alarm)
    if grant.lock != lock:
        raise GrantRefused("lock.grant_other_lock", "the unlock grant is for another lock", alarm=grant.alarm)
    if grant.patrol != patrol:
        raise GrantRefused("lock.grant_other_patrol", "the unlock grant is another patrol's", alarm=grant.alarm)
    return grant
