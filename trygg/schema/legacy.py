"""Databases made by the old single chain (``trygg/migrations``, head 0006): brought onto the per-service chains.

Before the split, one Alembic chain (version table ``alembic_version``) made every table in every database, so a
gateway's database also holds the receiver's tables and the reverse. The chain is kept here, frozen, under
``legacy_chain/``. When a service migrates a database that carries its version table:

1. The old chain is first brought to its head 0006, if it is behind.
2. Each chain being run whose tables are all there is stamped at its ``legacy_baseline`` (a revision that makes
   exactly the old chain's 0006 schema for those tables), so its data stays where it is; a chain whose tables are
   all missing builds them from scratch; a chain with some of them missing is refused (someone edited the schema).
3. The other service's old tables (old-chain tables no chain being run owns) are dropped when every one of them is
   empty and no other chain has claimed them; otherwise they are kept and a warning says so. Data is never dropped:
   rows in them mean the database is shared by both services (docker-compose.yml does that), or was misconfigured,
   and the operator decides. Empty, they only give an internet-facing gateway the receiver's schema for nothing.
4. ``alembic_version`` is dropped once no old table is left without an owner; while the other service's tables wait
   for that service to adopt them, it stays.

See docs/architecture.md, "Schemas and migrations".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import structlog
from sqlalchemy import MetaData, inspect, select, table, text
from sqlalchemy.engine import Connection

from trygg.schema.chain import Chain, alembic_config

log = structlog.get_logger(__name__)

LEGACY_CHAIN = Chain(name="legacy", directory=Path(__file__).parent / "legacy_chain", version_table="alembic_version")
LEGACY_HEAD = "0006"
# Every table the old chain had made at 0006, by the chain that owns it now (frozen: the old chain gets no new
# revisions). Each chain names its share as its ``legacy_tables``.
LEGACY_SPLIT: dict[str, frozenset[str]] = {
    "gateway": frozenset(
        {
            "devices",
            "intake_alarms",
            "outbox",
            "device_credentials",
            "service_accounts",
            "checkin_consents",
            "checkin_skipped_nights",
            "checkins",
            "device_health",
            "device_configs",
            "install_tests",
        }
    ),
    "receiver": frozenset({"queue_alarms", "alarm_events", "users", "api_tokens", "device_notices"}),
    "audit": frozenset({"supervision_log"}),
}
LEGACY_TABLES: frozenset[str] = frozenset().union(*LEGACY_SPLIT.values())


class LegacySchemaError(RuntimeError):
    """A database of the old chain that cannot be brought onto the new chains without a person looking at it."""


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _is_empty(connection: Connection, name: str) -> bool:
    return connection.execute(select(text("1")).select_from(table(name)).limit(1)).first() is None


def upgrade_legacy(connection: Connection, revision: str = LEGACY_HEAD) -> None:
    """Run the frozen old chain up to ``revision`` (also used by tests to build an old database)."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(LEGACY_CHAIN, connection), revision)
    except CommandError as exc:
        raise LegacySchemaError(
            f"the database's old version table names a revision the old chain does not have: {exc}"
        ) from exc


def adopt(connection: Connection, chains: Sequence[Chain]) -> None:
    """Bring a database of the old single chain onto ``chains`` (nothing happens to any other database)."""
    from alembic import command

    present = _tables(connection)
    if LEGACY_CHAIN.version_table not in present:
        return
    revisions = [row[0] for row in connection.execute(text(f"SELECT version_num FROM {LEGACY_CHAIN.version_table}"))]
    if revisions != [LEGACY_HEAD]:
        log.info("old schema behind its head: upgrading it first", revisions=",".join(revisions), head=LEGACY_HEAD)
        upgrade_legacy(connection)
        present = _tables(connection)
    for chain in chains:
        if chain.version_table in present or not chain.legacy_tables or chain.legacy_baseline is None:
            continue
        have = chain.legacy_tables & present
        if have == chain.legacy_tables:
            command.stamp(alembic_config(chain, connection), chain.legacy_baseline)
            log.info("old schema adopted", chain=chain.name, revision=chain.legacy_baseline, tables=len(have))
        elif have:
            missing = sorted(chain.legacy_tables - have)
            raise LegacySchemaError(f"chain {chain.name}: old database lacks tables {missing}; fix it by hand")
    _settle_foreign(connection, chains)


def _settle_foreign(connection: Connection, chains: Sequence[Chain]) -> None:
    """Drop the other service's old tables when all are empty and unclaimed; then the old version table."""
    present = _tables(connection)
    ours = {c.version_table for c in chains}
    claimed_elsewhere = any(t.startswith("alembic_version_") and t not in ours for t in present)
    claimed: set[str] = set().union(*(c.legacy_tables for c in chains))
    foreign = set(LEGACY_TABLES - claimed) & present
    if foreign and not claimed_elsewhere:
        if all(_is_empty(connection, name) for name in foreign):
            doomed = MetaData()
            doomed.reflect(connection, only=sorted(foreign))
            doomed.drop_all(connection)  # in foreign-key order
            log.info("old schema: the other service's empty tables dropped", tables=len(foreign))
            foreign = set()
        else:
            log.warning(
                "old schema: the other service's tables hold rows and are kept (shared or misconfigured database)",
                tables=len(foreign),
            )
    if not foreign or claimed_elsewhere:
        connection.execute(text(f"DROP TABLE {LEGACY_CHAIN.version_table}"))
        log.info("old schema: its version table dropped")
