"""A throw-away PostgreSQL database for tests: create and drop it with asyncpg on the local server.

The admin DSN comes from ``TRYGG_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
trust auth as on the CI machine). ``.ci/run`` makes sure the server runs and accepts that login.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped,unused-ignore]

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def admin_dsn() -> str:
    return os.environ.get("TRYGG_TEST_PG_DSN") or DEFAULT_ADMIN_DSN


def unique_db_name(prefix: str = "trygg_test") -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


def with_database(dsn: str, database: str, *, driver: str | None = None) -> str:
    """``dsn`` pointed at ``database``; ``driver="asyncpg"`` gives a SQLAlchemy ``postgresql+asyncpg`` URL."""
    parts = urlsplit(dsn)
    scheme = "postgresql" + (f"+{driver}" if driver else "")
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _check_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise ValueError(f"unsafe database name {name!r}")
    return name


async def _connect(dsn: str, timeout_s: float) -> Any:
    return await asyncpg.connect(dsn, timeout=timeout_s)


async def check_server(dsn: str, timeout_s: float = 5.0) -> None:
    """Raise (OSError, asyncpg errors, TimeoutError) when the server is not usable with ``dsn``."""
    conn = await _connect(dsn, timeout_s)
    try:
        await conn.fetchval("select 1")
    finally:
        await conn.close()


async def create_database(dsn: str, name: str, timeout_s: float = 10.0) -> None:
    conn = await _connect(dsn, timeout_s)
    try:
        await conn.execute(f'CREATE DATABASE "{_check_name(name)}"')
    finally:
        await conn.close()


async def drop_database(dsn: str, name: str, timeout_s: float = 10.0) -> None:
    """Drop ``name`` even when a test left connections open (``WITH (FORCE)``, PostgreSQL 13+)."""
    conn = await _connect(dsn, timeout_s)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{_check_name(name)}" WITH (FORCE)')
    finally:
        await conn.close()


def server_problem(dsn: str, timeout_s: float = 5.0) -> str | None:
    """None when PostgreSQL answers at ``dsn``, otherwise why not (for skip/fail messages)."""
    try:
        # in a thread of its own: callers may sit inside a running event loop (async fixtures)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, check_server(dsn, timeout_s)).result()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # TimeoutError is an OSError
        return f"{type(exc).__name__}: {exc}"
    return None
