"""The receiver's store: its own ``MetaData`` and Alembic chain (``alarm_receiver/migrations``,
``alembic_version_receiver``).

The receiver's database holds the operators' side (queue, users, tokens, notices, and later the client register
with names and health notes) and the supervision log (``trygg.audit``); the gateway's database never does.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase

from trygg import schema
from trygg.audit.migrations import AUDIT_CHAIN
from trygg.db import new_metadata
from trygg.schema.legacy import LEGACY_SPLIT


class Base(DeclarativeBase):
    metadata = new_metadata()


RECEIVER_CHAIN = schema.Chain(
    name="receiver",
    directory=Path(__file__).parent / "migrations",
    legacy_tables=LEGACY_SPLIT["receiver"],
    legacy_baseline="r0001",
)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the receiver's database (its tables and the supervision log) to the newest schema."""
    await schema.migrate(engine, AUDIT_CHAIN, RECEIVER_CHAIN)
