"""PostgreSQL fixtures; tests/conftest.py imports them (``from tests.fixtures_pg import pg_url``).

``pg_url`` is session-scoped: one fresh, uniquely named database for the whole run, dropped at the end.
Tests that share it must clean up after themselves (or use their own schema/tables).

Without a reachable server the tests that use it are skipped, except when ``CI`` is set: then they fail,
so that a broken CI machine never passes by skipping.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.pg import admin_dsn, create_database, drop_database, server_problem, unique_db_name, with_database


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    """A plain ``postgresql://`` DSN of the admin database (checked reachable), for asyncpg or psql."""
    dsn = admin_dsn()
    problem = server_problem(dsn)
    if problem is not None:
        message = (
            f"PostgreSQL is not reachable at {dsn} ({problem}). Start it (.ci/run does) or set "
            "TRYGG_TEST_PG_DSN=postgresql://USER[:PASSWORD]@HOST:PORT/postgres"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return dsn


@pytest.fixture(scope="session")
def pg_url(pg_admin_dsn: str) -> Iterator[str]:
    """``postgresql+asyncpg://...`` SQLAlchemy URL of a fresh database, dropped after the session."""
    name = unique_db_name()
    asyncio.run(create_database(pg_admin_dsn, name))
    try:
        yield with_database(pg_admin_dsn, name, driver="asyncpg")
    finally:
        asyncio.run(drop_database(pg_admin_dsn, name))
