"""Logging in without delaying an alarm, and with guessing limited (issue 8, point 5).

argon2id costs about 160 ms of CPU and 64 MiB per check. It runs in a small pool of its own threads
(``login_hash_threads``), never on the event loop that carries the alarms, at a lower CPU priority than it (nice
+10, so on a busy machine the loop wins the CPU), and never while a database connection is held (the receiver's
SQLite has one): the user's row is read in one short session, the hash is checked with no
session open, and the token is written in another short session. Logins waiting for a hash thread are bounded
(``login_queue_max``; more are answered 429 at once), and failed logins per username and per client address are
throttled before any hashing (alarm_receiver/login_throttle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from alarm_receiver.auth import DUMMY_HASH, hasher, issue_token
from alarm_receiver.login_throttle import LoginThrottle
from alarm_receiver.models import User
from trygg.errors import ApiError, refusal_response
from trygg.settings import Settings


class LoginRefused(ApiError):
    """A login refused: 401 ``auth.bad_credentials``, 429 ``auth.login_throttled`` or ``auth.login_busy``."""


def bad_credentials() -> LoginRefused:
    return LoginRefused(
        401, "auth.bad_credentials", "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
    )


def throttled(retry_after_s: float) -> LoginRefused:
    seconds = max(1, math.ceil(retry_after_s))
    return LoginRefused(
        429,
        "auth.login_throttled",
        f"too many failed logins; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
        retry_after_s=seconds,
    )


def busy() -> LoginRefused:
    return LoginRefused(
        429,
        "auth.login_busy",
        "too many logins at once; try again in a moment",
        headers={"Retry-After": "1"},
        retry_after_s=1,
    )


# How much lower the hash threads' CPU priority is than the event loop's. Measured on the shared 2-core machine
# (bench/login_flood.py --accounts per-burst --per-account 4 --rounds 7 --rate 40, load ~2): the median of each
# window's alarm p90 went from 121-170 ms with a burst's four checks at the loop's priority to 49-63 ms at +10,
# against 22-84 ms without a burst (docs/benchmarks.md, "Login flood").
HASH_THREAD_NICE = 10


def _lower_priority() -> None:
    """Run the calling hash thread at a lower priority. Linux keeps the nice value per thread; elsewhere
    ``setpriority`` would lower the whole process, the event loop with it, so nothing is done there."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + HASH_THREAD_NICE)


class PasswordVerifier:
    """argon2 in its own bounded thread pool; ``verify``/``hash`` never block the event loop."""

    def __init__(self, threads: int, queue_max: int, ph: PasswordHasher = hasher) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="trygg-argon2", initializer=_lower_priority
        )
        self._ph = ph
        self._queue_max = queue_max
        self._pending = 0

    def check_capacity(self) -> None:
        if self._pending >= self._queue_max:
            raise busy()

    async def _run(self, fn: object, *args: str) -> object:
        self.check_capacity()
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)  # type: ignore[arg-type]
        finally:
            self._pending -= 1

    async def verify(self, password_hash: str, password: str) -> bool:
        def check(stored: str, given: str) -> bool:
            try:
                return bool(self._ph.verify(stored, given))
            except (VerificationError, InvalidHashError):
                return False

        return bool(await self._run(check, password_hash, password))

    async def hash(self, password: str) -> str:
        return str(await self._run(self._ph.hash, password))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Login:
    token: str
    expires_at: datetime
    username: str
    role: str


class Logins:
    """Checks a username and password and issues a token; raises :class:`LoginRefused`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._ttl_s = settings.token_ttl_s
        self.verifier = PasswordVerifier(settings.login_hash_threads, settings.login_queue_max)
        self.throttle = LoginThrottle(
            per_account=settings.login_fail_per_account,
            per_address=settings.login_fail_per_address,
            window_s=settings.login_fail_window_s,
        )

    async def login(self, username: str, password: str, address: str) -> Login:
        wait = self.throttle.retry_after(username, address)
        if wait > 0:
            raise throttled(wait)
        self.verifier.check_capacity()  # before any work: a full queue answers at once
        attempt = self.throttle.attempt(username, address)
        async with self._sessions() as session:  # read and let go: no connection is held while hashing
            row = (
                await session.execute(
                    select(User.id, User.password_hash, User.disabled).where(User.username == username)
                )
            ).first()
        # An unknown username costs the same hash as a known one, so the time does not tell which it was.
        ok = await self.verifier.verify(row.password_hash if row is not None else DUMMY_HASH, password)
        if not ok or row is None or row.disabled:
            raise bad_credentials()
        self.throttle.succeeded(username, address, attempt)
        new_hash = await self.verifier.hash(password) if hasher.check_needs_rehash(row.password_hash) else None
        async with self._sessions() as session:
            user = await session.get(User, row.id)
            if user is None or user.disabled:
                raise bad_credentials()
            if new_hash is not None:
                user.password_hash = new_hash
            token, expires = await issue_token(session, user, self._ttl_s)
            await session.commit()
            return Login(token, expires, user.username, user.role)

    def close(self) -> None:
        self.verifier.close()


class LoginGuard:
    """ASGI middleware: a login from an address already over its failed-login limit is answered 429 at the edge,
    before routing, body parsing and validation, so that a flood from one address costs the event loop (which also
    carries the alarms) as little as possible. The full check (username and address) still runs in ``Logins``."""

    def __init__(
        self, app: ASGIApp, logins: Logins, refused: Callable[[str], None], path: str = "/api/v1/auth/token"
    ) -> None:
        self.app = app
        self.logins = logins
        self.refused = refused  # the app's refusal counter (trygg/errors.py)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            client = scope.get("client")
            wait = self.logins.throttle.addresses.retry_after(client[0] if client else "unknown")
            if wait > 0:
                refusal = throttled(wait)
                # counted, not logged line by line: a flood must not become a flood of log lines (the counter
                # trygg_receiver_rejected_requests_total{reason="auth.login_throttled"} shows it)
                self.refused(refusal.code)
                await refusal_response(refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)
