"""Device notices ("acknowledged": help is coming) count as sent only on the broker's PUBACK.

The broker is paused with SIGSTOP so that a PUBACK cannot arrive, and killed and restarted so that an
in-flight message is dropped; the notice must then be sent again, never lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alarm_receiver.models import DeviceNotice
from alarm_receiver.service import Receiver
from testing.broker import Broker
from testing.harness import RawDevice, make_settings, prepare_stores
from testing.wait import eventually
from trygg import mqtt


@asynccontextmanager
async def paused(broker: Broker) -> AsyncIterator[None]:
    """The broker process stopped (SIGSTOP): it accepts bytes into its socket but answers nothing."""
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        if broker.proc is not None and broker.proc.poll() is None:
            os.kill(broker.proc.pid, signal.SIGCONT)


def kill_and_restart(broker: Broker) -> None:
    assert broker.proc is not None
    broker.proc.kill()  # SIGKILL works on a stopped process
    broker.proc.wait(5)
    broker.start()  # same port, empty memory: no session to resume


async def still_pending(fut: asyncio.Future[None], for_s: float) -> bool:
    """True if ``fut`` did not complete within ``for_s`` (a negative check needs some waiting)."""
    done, _ = await asyncio.wait({fut}, timeout=for_s)
    return not done


async def connected_client(broker: Broker, tracker: mqtt.PubackTracker) -> Any:
    client = mqtt.make_client(f"t-{os.urandom(3).hex()}", persistent=False, tracker=tracker, reconnect_delay_s=0.2)
    await mqtt.connect(client, mqtt.MqttEndpoint.from_url(broker.url), keepalive=5)
    return client


async def test_puback_completes_the_future_and_a_paused_broker_holds_it(broker: Broker) -> None:
    tracker = mqtt.PubackTracker()
    client = await connected_client(broker, tracker)
    try:
        await asyncio.wait_for(tracker.publish_confirmed(client, "t/notice/1", b"x"), 5)
        async with paused(broker):
            fut = tracker.publish_confirmed(client, "t/notice/2", b"y")
            assert await still_pending(fut, 0.5), "confirmed without a PUBACK"
        await asyncio.wait_for(fut, 5)
    finally:
        await asyncio.wait_for(client.disconnect(), 5)


async def test_a_message_dropped_on_reconnect_fails_its_future(broker: Broker) -> None:
    tracker = mqtt.PubackTracker()
    client = await connected_client(broker, tracker)
    try:
        async with paused(broker):
            fut = tracker.publish_confirmed(client, "t/notice/3", b"z")
            kill_and_restart(broker)
        with pytest.raises(mqtt.PublishNotDelivered):
            await asyncio.wait_for(fut, 15)
    finally:
        await asyncio.wait_for(client.disconnect(), 5)


async def _notice(receiver: Receiver, device_id: str, alarm_id: str) -> int:
    async with receiver.sessions.begin() as session:
        notice = DeviceNotice(device_id=device_id, alarm_id=alarm_id, status="acknowledged")
        session.add(notice)
        await session.flush()
        notice_id = notice.id
    receiver.notice_wake.set()
    return notice_id


async def _sent(receiver: Receiver, notice_id: int) -> bool:
    async with receiver.sessions() as session:
        sent = await session.scalar(select(DeviceNotice.sent_at).where(DeviceNotice.id == notice_id))
    return sent is not None


async def test_notice_stays_unsent_until_puback_and_reaches_the_device(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s)
    receiver = Receiver(s)
    await receiver.start()
    try:
        await eventually(lambda: _connected(receiver), 10)
        async with RawDevice(s, "pendant-n") as device:
            async with paused(broker):
                notice_id = await _notice(receiver, "pendant-n", "a-1")
                await eventually(lambda: _published(receiver, notice_id), 5)
                await asyncio.sleep(0.5)  # time for a premature "sent" mark to be written, if there were one
                assert not await _sent(receiver, notice_id), "marked sent before the broker's PUBACK"
            ack = await device.next_ack(alarm_id="a-1", timeout=10)
            assert ack["status"] == "acknowledged"
            await eventually(lambda: _sent(receiver, notice_id), 10)
    finally:
        await receiver.stop()


async def test_notice_dropped_by_a_broker_restart_is_sent_again(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s)
    receiver = Receiver(s)
    receiver.client.set_reconnect_delay(0.2)
    await receiver.start()
    try:
        await eventually(lambda: _connected(receiver), 10)
        async with paused(broker):
            notice_id = await _notice(receiver, "pendant-r", "a-2")
            await eventually(lambda: _published(receiver, notice_id), 5)
            kill_and_restart(broker)
        # the first copy died with the broker; only a second publish can earn the PUBACK that marks it sent
        await eventually(lambda: _sent(receiver, notice_id), 20)
    finally:
        await receiver.stop()


async def _connected(receiver: Receiver) -> bool:
    return mqtt.is_connected(receiver.client)


async def _published(receiver: Receiver, notice_id: int) -> bool:
    return receiver.notifier.in_flight(notice_id)
