"""What every command module shares: settings with logging, running a coroutine, a refusal, each service's store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver.db import migrate as migrate_receiver
from gateway.db import migrate as migrate_gateway
from trygg.db import transaction
from trygg.logging import configure_logging
from trygg.settings import Settings, get_settings

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def settings() -> Settings:
    """The settings, with logging configured from them (a command's first call)."""
    s = get_settings()
    configure_logging(s.log_level, s.log_json)
    return s


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` to stderr; raise the result to exit with ``code``."""
    typer.echo(message, err=True)
    return typer.Exit(code)


@asynccontextmanager
async def gateway_store(s: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on the gateway's database, migrated first."""
    async with transaction(s.gateway_database_url, migrate_gateway) as session:
        yield session


@asynccontextmanager
async def receiver_store(s: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on the receiver's database, migrated first."""
    async with transaction(s.receiver_database_url, migrate_receiver) as session:
        yield session
