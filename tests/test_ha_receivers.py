"""Two receivers on one PostgreSQL database behind a real HAProxy: a change made through one reaches the live
feed on the other within a second, tokens work on both, a logout ends live feeds on both, and escalation happens
exactly once (one leader)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from alarm_receiver.models import AlarmEvent
from alarm_receiver.service import Receiver
from testing.broker import Broker, free_port
from testing.haproxy import HAProxy
from testing.harness import Api, LiveFeedReader, create_user, make_settings, running_receiver
from testing.wait import eventually
from trygg.settings import Settings
from wire.intake import INTAKE_PATH, IntakeAlarm, IntakeRequest


def instance(s: Settings, name: str) -> Settings:
    port = free_port()
    return s.model_copy(
        update={"instance_name": name, "receiver_http_port": port, "receiver_url": f"http://127.0.0.1:{port}"}
    )


@asynccontextmanager
async def two_receivers(
    tmp_path: Path, broker: Broker, pg_url: str, **extra: Any
) -> AsyncIterator[tuple[list[Settings], list[Receiver], HAProxy]]:
    base = make_settings(
        tmp_path, broker.url, receiver_database_url=pg_url, leader_check_s=0.5, leader_ttl_s=3.0, **extra
    )
    await create_user(base, "op", "operator")
    settings = [instance(base, "r1"), instance(base, "r2")]
    async with AsyncExitStack() as stack:
        receivers = [await stack.enter_async_context(running_receiver(s)) for s in settings]
        proxy = HAProxy([f"127.0.0.1:{s.receiver_http_port}" for s in settings])
        proxy.start()
        stack.callback(proxy.stop)
        await eventually(lambda: all(r.fanout.listening.is_set() for r in receivers), timeout=30)
        yield settings, receivers, proxy


async def send_alarm(s: Settings, alarm_id: str, device_id: str = "p1") -> None:
    """One alarm into a receiver's intake (one device's further falls while one is open collapse into it, issue 8)."""
    assert s.intake_token is not None
    now = datetime.now(UTC)
    body = IntakeRequest(
        items=[
            IntakeAlarm(device_id=device_id, alarm_id=alarm_id, type="fall", priority=8, device_ts=now, stored_at=now)
        ]
    )
    async with httpx.AsyncClient(base_url=s.receiver_url) as http:
        r = await http.post(
            INTAKE_PATH,
            content=body.model_dump_json(),
            headers={
                "Authorization": f"Bearer {s.intake_token.get_secret_value()}",
                "Content-Type": "application/json",
            },
        )
        r.raise_for_status()


def api_at(s: Settings, token: str) -> Api:
    api = Api(s)
    api.token = token
    api.http.headers["Authorization"] = f"Bearer {token}"
    return api


async def test_change_through_one_receiver_reaches_the_other_and_tokens_work_on_both(
    broker: Broker, tmp_path: Path, pg_fresh_url: str
) -> None:
    async with two_receivers(tmp_path, broker, pg_fresh_url) as (settings, _receivers, proxy):
        s1, s2 = settings
        # Logged in through HAProxy; the token works on each receiver directly.
        front = Api(s1.model_copy(update={"receiver_url": proxy.url}))
        await front.login("op")
        assert front.token is not None
        one, two = api_at(s1, front.token), api_at(s2, front.token)
        for api in (one, two, front):
            assert (await api.http.get("/api/v1/auth/me")).json()["username"] == "op"
        async with LiveFeedReader(two) as feed_two, LiveFeedReader(one) as feed_one:
            # Intake on receiver 1 -> the console on receiver 2.
            t0 = time.monotonic()
            await send_alarm(s1, "a1")
            alarm = await feed_two.next_alarm(alarm_id="a1", timeout=10)
            took = time.monotonic() - t0
            print(f"intake on r1 -> live feed on r2: {took * 1000:.0f} ms")
            await feed_one.next_alarm(alarm_id="a1", timeout=10)
            # Acknowledged on receiver 1 -> the console on receiver 2 within a second (generous here: load).
            t0 = time.monotonic()
            assert (await one.act(alarm["id"], "acknowledge")).status_code == 200
            await feed_two.next_alarm(alarm_id="a1", state="acknowledged", timeout=10)
            print(f"acknowledge on r1 -> live feed on r2: {(time.monotonic() - t0) * 1000:.0f} ms")
            # Logout on receiver 1 ends the live feed on receiver 2 too.
            assert (await one.http.post("/api/v1/auth/logout")).status_code == 204

            async def ended() -> bool:
                while True:
                    event, data = await feed_two.events.get()
                    if event == "session_ended":
                        return bool(data["code"] == "auth.logged_out")

            assert await asyncio.wait_for(ended(), 10)
            assert (await two.http.get("/api/v1/auth/me")).status_code == 401
        for api in (one, two, front):
            await api.close()


async def test_escalation_happens_once_with_two_receivers(broker: Broker, tmp_path: Path, pg_fresh_url: str) -> None:
    async with two_receivers(tmp_path, broker, pg_fresh_url, escalate_first_s=0.5, escalate_second_s=1.0) as (
        settings,
        receivers,
        _proxy,
    ):
        assert sum(r.leadership.is_leader for r in receivers) <= 1
        for n in range(5):
            await send_alarm(settings[n % 2], f"e{n}", device_id=f"p{n}")  # five devices: five items

        async def escalations() -> list[tuple[int, int]]:
            async with receivers[0].sessions() as session:
                rows = await session.execute(
                    select(AlarmEvent.alarm_pk, AlarmEvent.params).where(AlarmEvent.action == "escalated")
                )
                return [(pk, int((params or {})["level"])) for pk, params in rows]

        async def all_at_level_two() -> bool:
            return {pk for pk, level in await escalations() if level == 2} == set(range(1, 6))

        await eventually(all_at_level_two, timeout=30)
        # Several more escalation rounds on both receivers: nothing escalates twice. (An alarm first seen past
        # both limits goes to level 2 in one step, so each alarm has one or two events, never a level twice.)
        leader = next(r for r in receivers if r.leadership.is_leader)
        rounds = leader.leadership.rounds
        await eventually(lambda: leader.leadership.rounds > rounds + 5, timeout=30)
        events = await escalations()
        assert len(events) == len(set(events)), events
