"""What every protocol runner of ``bench/protocols.py`` shares: the load it is given, the figures it returns, and a
gateway to run it against (its own process, a private Mosquitto, SQLite, on loopback).

A runner module defines ``NAME: str`` and ``async def run(load: Load) -> Figures``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench._common import percentile
from devices import DeviceType
from gateway.models import StoredAlarm
from testing.broker import Broker
from testing.harness import make_settings, prepare_stores
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings


@dataclass(frozen=True)
class Load:
    alarms: int  # alarms to send in all
    rate: float  # offered, alarms per second (an absolute schedule)
    units: int  # units (devices) the alarms are spread over, round robin


@dataclass(frozen=True)
class Figures:
    name: str
    sent: int
    answered: int  # alarms the sender heard "stored" / OK / ACK for
    stored: int  # alarms the gateway's store holds afterwards
    duplicates: int  # alarms stored more than once (rows beyond the distinct alarms sent): must be 0
    seconds: float  # first send to last answer
    rate_per_s: float  # answered / seconds
    p50_ms: float  # send -> answer
    p99_ms: float
    # CPU ms per answered alarm of each process measured (first send to last answer), e.g. {"gateway": 0.6}; only
    # the runners that measure it fill it in
    cpu_ms_per_alarm: dict[str, float] = field(default_factory=dict)
    loadavg: tuple[float, float] | None = None  # one-minute load average at the first send and after the last answer


def figures(name: str, sent: int, latencies_s: Sequence[float], stored: int, seconds: float) -> Figures:
    ms = sorted(x * 1000 for x in latencies_s)
    answered = len(ms)
    return Figures(
        name=name,
        sent=sent,
        answered=answered,
        stored=stored,
        duplicates=max(0, stored - sent),
        seconds=round(seconds, 3),
        rate_per_s=round(answered / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(percentile(ms, 50), 2),
        p99_ms=round(percentile(ms, 99), 2),
    )


@dataclass
class Running:
    settings: Settings
    workdir: Path

    async def stored(self) -> int:
        async with engine_scope(self.settings.gateway_database_url) as engine, session_factory(engine)() as session:
            return int(await session.scalar(select(func.count()).select_from(StoredAlarm)) or 0)


Register = Callable[[Any], Awaitable[None]]  # given a session on the gateway's store, before the gateway starts


@asynccontextmanager
async def gateway(
    devices: Sequence[str], *, register: Register | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """A private Mosquitto, ``trygg receiver`` and ``trygg gateway`` as processes of their own (so the bench's
    clients do not share their event loop), the gateway's store with ``devices`` registered (and whatever
    ``register`` adds). The gateway forwards to the receiver as in production."""
    from bench.alarm_latency import ServiceProcess

    workdir = Path(tempfile.mkdtemp(prefix="trygg-bench-proto-"))
    broker = Broker(workdir=workdir / "broker", extra_config="max_connections -1\n")
    broker.start()
    try:
        s = make_settings(workdir, broker.url, **settings)
        await prepare_stores(s, dict.fromkeys(devices, DeviceType.PENDANT))
        if register is not None:
            async with engine_scope(s.gateway_database_url) as engine, session_factory(engine).begin() as session:
                await register(session)
        async with AsyncExitStack() as stack:
            rx = ServiceProcess("receiver", s, s.receiver_http_port, workdir / "receiver.log", "WARNING")
            stack.callback(rx.stop)
            await rx.wait_ready()
            gw = ServiceProcess("gateway", s, s.gateway_http_port, workdir / "gateway.log", "WARNING")
            stack.callback(gw.stop)
            await gw.wait_ready()
            yield Running(s, workdir)
    finally:
        broker.stop()


async def paced(count: int, rate: float) -> AsyncIterator[int]:
    """0..count-1 at ``rate`` per second (absolute schedule)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i
