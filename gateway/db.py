"""The gateway's store: its own ``MetaData`` and Alembic chain (``gateway/migrations``, ``alembic_version_gateway``).

The gateway's database holds only the gateway's tables and the supervision log (``trygg.audit``): never the
receiver's users, tokens, queue or client register.
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


GATEWAY_CHAIN = schema.Chain(
    name="gateway",
    directory=Path(__file__).parent / "migrations",
    legacy_tables=LEGACY_SPLIT["gateway"],
    legacy_baseline="g0001",
)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the gateway's database (its tables and the supervision log) to the newest schema."""
    await schema.migrate(engine, AUDIT_CHAIN, GATEWAY_CHAIN)
