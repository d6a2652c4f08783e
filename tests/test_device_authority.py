"""A device cannot hide, downgrade or re-route its own alarm (issue 8, point 1).

Whether an alarm is an installation test is the gateway's own decision (its installation-test window), the
client reference comes from the registry, and a life-safety alarm never goes below its default priority. What a
device sends beyond the contract is carried along as opaque ``device_extra`` and never interpreted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from devices import DeviceType
from gateway.registry import add_device
from testing.broker import Broker
from testing.harness import (
    Api,
    LiveFeedReader,
    RawDevice,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from trygg.db import engine_scope, session_factory


def now() -> str:
    return datetime.now(UTC).isoformat()


@asynccontextmanager
async def system(broker: Broker, tmp_path: Path) -> AsyncIterator[tuple[Api, LiveFeedReader, RawDevice, RawDevice]]:
    """A device without a client (``lonely``) and one registered to client-anna, the live feed, an operator."""
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"lonely": DeviceType.PENDANT})
    async with engine_scope(s.gateway_database_url) as engine, session_factory(engine).begin() as session:
        await add_device(session, "anna-pendant", DeviceType.PENDANT, client_ref="client-anna")
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s):
        op = Api(s)
        await op.login("op")
        async with LiveFeedReader(op) as feed, RawDevice(s, "lonely") as lonely, RawDevice(s, "anna-pendant") as anna:
            yield op, feed, lonely, anna
        await op.close()


async def test_is_test_from_the_device_does_not_hide_its_alarm(broker: Broker, tmp_path: Path) -> None:
    async with system(broker, tmp_path) as (op, feed, lonely, _):
        lonely.publish("alarm", {"alarm_id": "x1", "type": "fall", "ts": now(), "is_test": True})
        assert (await lonely.next_ack(alarm_id="x1"))["status"] == "stored"
        shown = await feed.next_alarm(alarm_id="x1")
        assert shown["state"] == "new" and shown["is_test"] is False, shown
        assert shown["details"]["device_extra"] == {"is_test": True}  # carried along, never interpreted
        assert "x1" in {a["alarm_id"] for a in await op.alarms(device_id="lonely")}  # open, in the queue


async def test_a_client_ref_in_the_payload_is_ignored(broker: Broker, tmp_path: Path) -> None:
    async with system(broker, tmp_path) as (_, feed, lonely, anna):
        lonely.publish("alarm", {"alarm_id": "x2", "type": "assistance", "ts": now(), "client_ref": "client-bo"})
        no_client = await feed.next_alarm(alarm_id="x2")
        assert "client_ref" not in no_client["details"], no_client["details"]
        assert no_client["details"]["device_extra"] == {"client_ref": "client-bo"}
        anna.publish("alarm", {"alarm_id": "x3", "type": "assistance", "ts": now(), "client_ref": "client-bo"})
        registered = await feed.next_alarm(alarm_id="x3")
        assert registered["details"]["client_ref"] == "client-anna"


async def test_a_device_may_raise_a_priority_but_not_lower_a_life_safety_one(broker: Broker, tmp_path: Path) -> None:
    async with system(broker, tmp_path) as (_, feed, lonely, _):
        lonely.publish("alarm", {"alarm_id": "x4", "type": "fall", "ts": now(), "priority": 1})
        assert (await feed.next_alarm(alarm_id="x4"))["priority"] == 8
        lonely.publish("alarm", {"alarm_id": "x5", "type": "smoke", "ts": now(), "priority": 0})
        assert (await feed.next_alarm(alarm_id="x5"))["priority"] == 9
        lonely.publish("alarm", {"alarm_id": "x6", "type": "low_battery", "ts": now(), "priority": 9})
        assert (await feed.next_alarm(alarm_id="x6"))["priority"] == 9
        lonely.publish("alarm", {"alarm_id": "x7", "type": "mains_restored", "ts": now(), "priority": 0})
        assert (await feed.next_alarm(alarm_id="x7"))["priority"] == 0  # not life-safety: the device decides
