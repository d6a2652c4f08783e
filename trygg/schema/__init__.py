"""Migrations: each service's schema is its own Alembic chain with its own version table.

A :class:`Chain` is one Alembic script directory (``env.py``, ``versions/``) and its version table
(``alembic_version_<name>``), so chains live side by side in one database: the gateway's
(``gateway/migrations``), the receiver's (``alarm_receiver/migrations``) and the supervision log's
(``trygg/audit/migrations``), which both services run. A service migrates its database with :func:`migrate` and
its chains. A database made by the old single chain is brought onto the chains first, in the same transaction
(:mod:`trygg.schema.legacy`). On PostgreSQL the whole migration holds an advisory lock, so two services that start
together on one database migrate one after the other. docs/architecture.md, "Schemas and migrations".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from trygg.schema.chain import Chain, alembic_config, run_env
from trygg.schema.legacy import LegacySchemaError, adopt

__all__ = ["Chain", "LegacySchemaError", "alembic_config", "migrate", "run_env", "upgrade_chains"]

# pg_advisory_xact_lock key: "trygg-migrations" folded into a signed 64-bit integer.
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"trygg-migrations").digest()[:8], "big", signed=True)


def upgrade_chains(connection: Connection, chains: Sequence[Chain]) -> None:
    """On one connection: adopt a database of the old single chain, then every chain to its newest revision."""
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    adopt(connection, chains)
    for chain in chains:
        command.upgrade(alembic_config(chain, connection), "heads")


async def migrate(engine: AsyncEngine, *chains: Chain) -> None:
    """Bring ``chains`` to their newest revisions in one transaction (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_chains, chains)
