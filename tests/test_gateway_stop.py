"""A gateway's stop is bounded: a message whose handling never ends (a commit stuck behind a lock, say) is left
unanswered after ``gateway.core.STOP_HANDLING_S`` (the device resends, the broker redelivers) instead of holding the
stop, and with it a restart, forever."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway import core as core_module
from gateway.service import Gateway
from testing.broker import Broker
from testing.harness import make_settings, prepare_stores


async def test_a_handler_that_never_ends_does_not_hold_the_stop(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core_module, "STOP_HANDLING_S", 0.5)
    settings = make_settings(tmp_path, broker.url)
    await prepare_stores(settings, {})
    gw = Gateway(settings)
    await gw.start()
    async def never_ends() -> None:  # a message's handling that never ends
        await asyncio.Event().wait()

    stuck = asyncio.get_running_loop().create_task(never_ends())
    gw.core.dispatcher._tasks.add(stuck)
    started = time.monotonic()
    await asyncio.wait_for(gw.stop(), 30)
    assert time.monotonic() - started < 10
    assert stuck.cancelled(), "the stuck handling was cancelled: its message stays unanswered"
