"""The gateway's store: its own ``MetaData`` and Alembic chain (``gateway/migrations``, ``alembic_version_gateway``).

The gateway's database holds only the gateway's tables and the supervision log (``trygg.audit``): never the
receiver's users, tokens, queue or client register.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase

from trygg import schema
from trygg.audit.migrations import AUDIT_CHAIN
from trygg.db import create_engine, new_metadata
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


def reader_engine(url: str) -> AsyncEngine | None:
    """A second connection to a SQLite file store, for the forwarder's reads (None: PostgreSQL, whose pool has many
    connections, or an in-memory store, which a second connection would not see).

    The process's one SQLite connection (``trygg.db.create_engine``) is otherwise queued for, and the forwarder reads
    after every commit: an alarm's commit waited behind that read, 7-10 ms on average and 19-26 ms at p90 at DC-09's
    saturated load (docs/benchmarks.md), against 0.1 ms with the read elsewhere. WAL: a reader never blocks the
    writer. Its rare write (a failed POST's bookkeeping) waits in SQLite's busy handler instead of in the queue."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return create_engine(url)
