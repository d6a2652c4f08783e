"""The DC-09 registry: `trygg dc09` and `/api/v1/dc09/accounts` (technicians), keys never listed nor logged, and
the most specific registration wins for a frame's account, receiver and line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from typer.testing import CliRunner

from devices import DeviceType
from gateway.db import migrate as migrate_gateway
from gateway.protocols.dc09.accounts import AccountError, add_account, find
from gateway.registry import add_device
from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_gateway, running_receiver
from trygg.db import transaction
from trygg.settings import get_settings
from trygg_cli.dc09 import dc09_app


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TRYGG_GATEWAY_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_cli_adds_lists_and_removes_without_showing_a_key(
    cli_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def register() -> None:
        async with transaction(cli_db, migrate_gateway) as session:
            await add_device(session, "unit-1", DeviceType.BASE_UNIT)

    asyncio.run(register())
    runner = CliRunner()
    caplog.set_level(logging.INFO)  # (at DEBUG, aiosqlite logs every statement with its parameters)
    added = runner.invoke(dc09_app, ["add", "12ab", "--device", "unit-1", "--receiver", "1", "--generate-key", "256"])
    assert added.exit_code == 0, added.output
    key = added.output.split("not shown again): ", 1)[1].strip()
    assert len(bytes.fromhex(key)) == 32
    assert added.output.count(key) == 1, "printed once, in no log line"
    key_file = tmp_path / "key"
    key_file.write_text("000102030405060708090A0B0C0D0E0F1011121314151617\n")
    assert runner.invoke(dc09_app, ["add", "12AB", "--device", "unit-1", "--key-file", str(key_file)]).exit_code == 0
    assert runner.invoke(dc09_app, ["add", "99", "--device", "unit-1"]).exit_code == 1  # 3-16 hex digits
    assert runner.invoke(dc09_app, ["add", "999", "--device", "nobody"]).exit_code == 1
    assert runner.invoke(dc09_app, ["add", "12AB", "--device", "unit-1", "--receiver", "1"]).exit_code == 1  # taken
    listed = runner.invoke(dc09_app, ["list"])
    assert listed.exit_code == 0
    assert listed.output.splitlines() == ["12AB\tR*\tL*\tunit-1\tencrypted", "12AB\tR1\tL*\tunit-1\tencrypted"]
    assert key not in listed.output and key not in caplog.text

    async def lookups() -> list[str | None]:
        async with transaction(cli_db, migrate_gateway) as session:
            exact = await find(session, "12ab", "1", "7")
            other = await find(session, "12AB", "2", None)
            none = await find(session, "12AC", None, None)
        return [
            exact.key.hex().upper() if exact and exact.key else None,
            other.key.hex().upper() if other and other.key else None,
            None if none is None else "found",
        ]

    assert asyncio.run(lookups()) == [key, "000102030405060708090A0B0C0D0E0F1011121314151617", None]
    assert runner.invoke(dc09_app, ["remove", "12ab", "--receiver", "1"]).exit_code == 0
    assert runner.invoke(dc09_app, ["remove", "12ab", "--receiver", "1"]).exit_code == 1
    assert runner.invoke(dc09_app, ["list"]).output.splitlines() == ["12AB\tR*\tL*\tunit-1\tencrypted"]
    # The commands configured structlog to write to CliRunner's stderr, closed now: later tests must not inherit it.
    structlog.reset_defaults()


async def test_bad_keys_are_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/k.db"
    async with transaction(url, migrate_gateway) as session:
        await add_device(session, "unit-1", DeviceType.BASE_UNIT)
        for bad in ("00", "zz" * 16, "00" * 20):
            with pytest.raises(AccountError):
                await add_account(session, "123", "unit-1", key=bad)


async def test_api_for_technicians_only(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"unit-1": DeviceType.BASE_UNIT})
    await create_user(s, "tech", "technician")
    await create_user(s, "op", "operator")
    async with running_receiver(s), running_gateway(s, http=True):
        tech, op = Api(s), Api(s)
        await tech.login("tech")
        await op.login("op")
        base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/dc09/accounts"
        try:
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tech.token}"}) as http:
                r = await http.post(base, json={"account": "5678", "device_id": "unit-1", "generate_key": 128})
                assert r.status_code == 201, r.text
                made = r.json()
                assert made["encrypted"] is True and len(bytes.fromhex(made["key"])) == 16
                r = await http.post(base, json={"account": "5678", "device_id": "unit-1"})
                assert r.status_code == 409 and r.json()["code"] == "dc09.account_exists"
                r = await http.post(base, json={"account": "777", "device_id": "nobody"})
                assert r.status_code == 404 and r.json()["code"] == "dc09.unknown_device"
                r = await http.post(base, json={"account": "777", "device_id": "unit-1", "key": "00"})
                assert r.status_code == 400 and r.json()["code"] == "dc09.bad_key"
                assert (await http.post(base, json={"account": "x", "device_id": "unit-1"})).status_code == 422
                listed = (await http.get(base)).json()
                assert [(a["account"], a["encrypted"], a["key"]) for a in listed] == [("5678", True, None)]
                forbidden = await http.get(base, headers={"Authorization": f"Bearer {op.token}"})
                assert forbidden.status_code == 403
                assert (await http.delete(f"{base}/{made['id']}")).status_code == 204
                assert (await http.delete(f"{base}/{made['id']}")).status_code == 404
                assert (await http.get(base)).json() == []
        finally:
            await tech.close()
            await op.close()


async def test_an_account_removed_through_the_api_is_refused_from_the_next_frame(
    broker: Broker, tmp_path: Path
) -> None:
    """The receiver remembers look-ups for a few seconds; a removal through the API makes it forget them at once
    (a unit whose account was removed gets DUH from its next frame on, not only after the cache time)."""
    from gateway.protocols.dc09.receiver import ACCOUNT_CACHE_S, Dc09Receiver
    from testing.broker import free_port
    from testing.dc09 import Dialler

    s = make_settings(tmp_path, broker.url, dc09_port=free_port(), dc09_transports=["tcp"])
    await prepare_stores(s, {"unit-1": DeviceType.BASE_UNIT})
    await create_user(s, "tech", "technician")
    async with running_receiver(s), running_gateway(s, http=True) as gw:
        port = gw.feature(Dc09Receiver).listening[0].port
        tech = Api(s)
        await tech.login("tech")
        base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1/dc09/accounts"
        try:
            async with httpx.AsyncClient(headers={"Authorization": f"Bearer {tech.token}"}) as http:
                unit = Dialler(port, "4321", transport="tcp")
                assert await unit.link_test() == "DUH"  # not registered yet
                r = await http.post(base, json={"account": "4321", "device_id": "unit-1"})
                assert r.status_code == 201, r.text
                assert await unit.link_test() == "ACK"  # seen at once, and now remembered
                loop = asyncio.get_running_loop()
                removed_at = loop.time()
                assert (await http.delete(f"{base}/{r.json()['id']}")).status_code == 204
                assert await unit.link_test() == "DUH"
                assert loop.time() - removed_at < ACCOUNT_CACHE_S  # refused before the cache would have expired
        finally:
            await tech.close()
