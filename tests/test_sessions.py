"""Sessions end at once (issue 8, point 9): an open live feed ends at logout and at expiry, the gateway refuses a
revoked token on the very next request, and the live feed takes its token from the Authorization header only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest_asyncio
from sqlalchemy import select

from alarm_receiver.auth import issue_token
from alarm_receiver.models import User
from testing.broker import Broker
from testing.harness import create_user, make_settings, prepare_stores, running_gateway, running_receiver
from testing.sse import feed_events
from trygg.db import engine_scope, session_factory, utcnow
from trygg.settings import Settings


@dataclass
class System:
    settings: Settings

    async def login(self, user: str = "op") -> str:
        async with httpx.AsyncClient(base_url=self.settings.receiver_url) as http:
            r = await http.post("/api/v1/auth/token", json={"username": user, "password": "correct-horse-1"})
            r.raise_for_status()
            token: str = r.json()["access_token"]
            return token

    async def short_token(self, ttl_s: int) -> str:
        """A token that expires in ``ttl_s`` seconds (the setting's minimum is 60 s: made directly)."""
        async with engine_scope(self.settings.receiver_database_url) as engine:
            async with session_factory(engine).begin() as session:
                user = await session.scalar(select(User).where(User.username == "op"))
                assert user is not None
                token, _ = await issue_token(session, user, ttl_s)
        return token


@pytest_asyncio.fixture
async def system(broker: Broker, tmp_path: Path) -> AsyncIterator[System]:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s)
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s, http=True):
        yield System(s)


async def read_feed(base: str, token: str, events: asyncio.Queue[tuple[str, dict[str, object]]]) -> None:
    """The live feed's events, in order, until the server closes the stream."""
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        async for event, data in feed_events(http):
            await events.put((event, json.loads(data)))
    await events.put(("closed", {}))


async def next_event(
    events: asyncio.Queue[tuple[str, dict[str, object]]], timeout: float
) -> tuple[str, dict[str, object]]:
    return await asyncio.wait_for(events.get(), timeout)


async def test_live_feed_ends_at_logout(system: System) -> None:
    token = await system.login()
    other = await system.login()  # the same user in another browser: that session goes on
    mine: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()
    theirs: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()
    tasks = [
        asyncio.create_task(read_feed(system.settings.receiver_url, token, mine)),
        asyncio.create_task(read_feed(system.settings.receiver_url, other, theirs)),
    ]
    try:
        assert (await next_event(mine, 5))[0] == "hello" and (await next_event(theirs, 5))[0] == "hello"
        async with httpx.AsyncClient(base_url=system.settings.receiver_url) as http:
            r = await http.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 204
        assert await next_event(mine, 1) == ("session_ended", {"code": "auth.logged_out"})
        assert (await next_event(mine, 1))[0] == "closed"
        assert theirs.empty() and not tasks[1].done()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_live_feed_ends_at_expiry(system: System) -> None:
    token = await system.short_token(2)
    events: asyncio.Queue[tuple[str, dict[str, object]]] = asyncio.Queue()
    task = asyncio.create_task(read_feed(system.settings.receiver_url, token, events))
    try:
        kind, hello = await next_event(events, 5)
        assert kind == "hello" and str(hello["expires_at"]) > utcnow().isoformat()
        started = asyncio.get_running_loop().time()
        assert await next_event(events, 4) == ("session_ended", {"code": "auth.session_expired"})
        assert asyncio.get_running_loop().time() - started < 3
        assert (await next_event(events, 1))[0] == "closed"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with httpx.AsyncClient(base_url=system.settings.receiver_url) as http:
        r = await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["code"] == "auth.session_expired"


async def test_gateway_refuses_a_revoked_token_on_the_next_request(system: System) -> None:
    token = await system.login()
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=system.settings.gateway_url, headers=auth) as gw:
        assert (await gw.get("/api/v1/consents")).status_code == 200
        async with httpx.AsyncClient(base_url=system.settings.receiver_url) as rx:
            assert (await rx.post("/api/v1/auth/logout", headers=auth)).status_code == 204
        refused = await gw.get("/api/v1/consents")
        assert refused.status_code == 401 and refused.json()["code"] == "auth.logged_out"


async def test_gateway_never_honours_a_token_past_its_expiry(system: System) -> None:
    ttl_s = 5  # long enough that a loaded machine still makes the first request in time
    token = await system.short_token(ttl_s)
    expired_by = time.monotonic() + ttl_s + 0.1  # the token was issued before this line
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=system.settings.gateway_url, headers=auth) as gw:
        assert (await gw.get("/api/v1/consents")).status_code == 200
        # the token's own lifetime: nothing to wait on but the clock
        await asyncio.sleep(max(0.0, expired_by - time.monotonic()))
        assert (await gw.get("/api/v1/consents")).status_code == 401


async def test_the_live_feed_token_never_travels_in_the_url(system: System) -> None:
    token = await system.login()
    async with httpx.AsyncClient(base_url=system.settings.receiver_url) as http:
        r = await http.get("/api/v1/events", params={"access_token": token}, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == "auth.not_logged_in"
