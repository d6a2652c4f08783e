from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.broker import Broker
from tests.fixtures_pg import pg_admin_dsn, pg_url  # noqa: F401  (fixtures)
from tests.pg import create_database, drop_database, unique_db_name, with_database


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto on a free port for this test only."""
    b = Broker(workdir=tmp_path / "mosquitto")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("pg_fresh_url")
    return url


@pytest_asyncio.fixture
async def pg_fresh_url(pg_admin_dsn: str) -> AsyncIterator[str]:  # noqa: F811
    """A new, empty PostgreSQL database for this test only (asyncpg URL), dropped afterwards."""
    name = unique_db_name()
    await create_database(pg_admin_dsn, name)
    try:
        yield with_database(pg_admin_dsn, name, driver="asyncpg")
    finally:
        await drop_database(pg_admin_dsn, name)
