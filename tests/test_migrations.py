"""Each service's schema is its own Alembic chain, and databases of the old single chain are brought onto them.

On SQLite and a real PostgreSQL: a service's database holds exactly its own tables and the supervision log; both
chains live side by side in one database; a database made by the old chain (head 0006, or behind it) keeps every
row and ends with the same schema as a fresh one. docs/architecture.md, "Schemas and migrations".
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alarm_receiver import migrations as receiver_migrations
from alarm_receiver.db import RECEIVER_CHAIN
from alarm_receiver.db import migrate as migrate_receiver
from gateway import migrations as gateway_migrations
from gateway.db import GATEWAY_CHAIN
from gateway.db import migrate as migrate_gateway
from tests.pg import admin_dsn, create_database, drop_database, unique_db_name, with_database
from trygg.audit.migrations import AUDIT_CHAIN
from trygg.audit.migrations import metadata as audit_metadata
from trygg.db import create_engine
from trygg.schema import Chain, LegacySchemaError, alembic_config
from trygg.schema.chain import compare_type
from trygg.schema.legacy import LEGACY_CHAIN, LEGACY_TABLES, upgrade_legacy

GATEWAY_TABLES = set(GATEWAY_CHAIN.legacy_tables)  # each service's tables the old chain made
RECEIVER_TABLES = set(RECEIVER_CHAIN.legacy_tables)
# The tables each chain made after the split (the gateway's g0003: dead_letters), beside those in a migrated database.
GATEWAY_ADDED = set(gateway_migrations.metadata().tables) - GATEWAY_TABLES
RECEIVER_ADDED = set(receiver_migrations.metadata().tables) - RECEIVER_TABLES
ADDED = GATEWAY_ADDED | RECEIVER_ADDED
Rows = dict[str, list[dict[str, Any]]]


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def on(engine: AsyncEngine, work: Callable[[Connection], Any]) -> Any:
    async with engine.begin() as conn:
        return await conn.run_sync(work)


def tables(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def data_tables(conn: Connection) -> set[str]:
    return {t for t in tables(conn) if not t.startswith("alembic_version")}


def old_database(revision: str = "0006") -> Callable[[Connection], None]:
    """The schema the old single chain made, up to ``revision`` (its frozen copy, trygg/schema/legacy_chain)."""
    return lambda conn: upgrade_legacy(conn, revision)


def _value(table: str, column: sa.Column[Any], n: int) -> Any:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return n % 2 == 0
    if isinstance(kind, sa.DateTime):
        return datetime(2026, 11, 20, 3, n, tzinfo=UTC)
    if isinstance(kind, sa.Date):
        return date(2026, 11, n + 1)
    if isinstance(kind, sa.Integer):
        return n + 1
    if isinstance(kind, sa.Float):
        return n + 0.5
    if isinstance(kind, sa.JSON):
        return {"table": table, "n": n}
    length = getattr(kind, "length", None) or 64
    return f"{table}-{column.name}-{n}"[-length:]


def fill(names: set[str], per_table: int = 2) -> Callable[[Connection], Rows]:
    """Rows in every table of ``names`` (foreign keys pointing at rows written before); what was written."""

    def work(conn: Connection) -> Rows:
        meta = sa.MetaData()
        meta.reflect(conn, only=sorted(names))
        written: Rows = {}
        for table in meta.sorted_tables:
            rows = []
            for n in range(per_table):
                row = {c.name: _value(table.name, c, n) for c in table.columns}
                for fk in table.foreign_keys:
                    row[fk.parent.name] = written[fk.column.table.name][n][fk.column.name]
                rows.append(row)
            conn.execute(table.insert(), rows)
            written[table.name] = rows
        return written

    return work


def read(names: set[str]) -> Callable[[Connection], Rows]:
    def work(conn: Connection) -> Rows:
        meta = sa.MetaData()
        meta.reflect(conn, only=sorted(names))
        out: Rows = {}
        for table in meta.sorted_tables:
            pk = list(table.primary_key.columns)
            out[table.name] = [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*pk))]
        return out

    return work


# Columns a later revision added with a value for the rows already there (any other added column is null in them).
ADDED_WITH_DEFAULT: dict[tuple[str, str], Any] = {
    ("intake_alarms", "is_test"): False,  # g0003: true only where an installation test names the alarm
    ("queue_alarms", "routing_missing"): False,  # r0003: old alarms are not marked
    ("queue_alarms", "repeats"): 0,  # r0005: no alarm was collapsed into an old row
}


def kept(after: Rows, before: Rows) -> Rows:
    """``after`` on the columns ``before`` had: columns a later revision added (g0002, r0002, ...) are left out,
    and must be null (or their value for old rows, ``ADDED_WITH_DEFAULT``) in the rows from before them."""
    out: Rows = {}
    for table, rows in after.items():
        columns = set(before[table][0]) if before.get(table) else {k for r in rows for k in r}
        for row in rows:
            added = {k: v for k, v in row.items() if k not in columns and v != ADDED_WITH_DEFAULT.get((table, k))}
            assert not added, f"{table}: an old row got values in new columns {added}"
        out[table] = [{k: v for k, v in row.items() if k in columns} for row in rows]
    return out


def comparable(rows: Rows) -> str:
    """Rows as text, datetimes in UTC (SQLite gives them back naive), so two reads can be compared."""

    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
        return v

    return json.dumps({t: [{k: plain(v) for k, v in r.items()} for r in rs] for t, rs in rows.items()}, default=str)


def schema(conn: Connection) -> dict[str, Any]:
    """Every data table's columns, keys, indexes and unique constraints, as the database reports them."""
    insp = sa.inspect(conn)

    def dump(items: list[Any]) -> list[str]:
        return sorted(json.dumps(i, sort_keys=True, default=str) for i in items)

    return {
        t: {
            "columns": dump([{**c, "type": str(c["type"])} for c in insp.get_columns(t)]),
            "pk": dump([insp.get_pk_constraint(t)]),
            "fk": dump(insp.get_foreign_keys(t)),
            "indexes": dump(insp.get_indexes(t)),
            "unique": dump(insp.get_unique_constraints(t)),
        }
        for t in sorted(data_tables(conn))
    }


def differences(*metadatas: sa.MetaData) -> Callable[[Connection], list[Any]]:
    """What autogenerate would change to make the database match ``metadatas`` (nothing, when they agree)."""

    def work(conn: Connection) -> list[Any]:
        opts = {
            "include_name": lambda name, kind, _: not (kind == "table" and name.startswith("alembic_version")),
            "compare_type": compare_type,  # as the chains' env.py compare
        }
        return list(compare_metadata(MigrationContext.configure(conn, opts=opts), list(metadatas)))

    return work


def at_head(chain: Chain) -> Callable[[Connection], bool]:
    def work(conn: Connection) -> bool:
        heads = set(ScriptDirectory.from_config(alembic_config(chain)).get_heads())
        got = {r[0] for r in conn.execute(sa.text(f"SELECT version_num FROM {chain.version_table}"))}
        return got == heads

    return work


# --- fresh databases ------------------------------------------------------------------------------------------
async def test_the_gateway_database_holds_only_the_gateways_tables(engine: AsyncEngine) -> None:
    await migrate_gateway(engine)
    await migrate_gateway(engine)  # idempotent
    assert await on(engine, data_tables) == GATEWAY_TABLES | GATEWAY_ADDED | {"supervision_log"}
    assert not await on(engine, data_tables) & RECEIVER_TABLES
    assert await on(engine, differences(gateway_migrations.metadata(), audit_metadata())) == []
    assert await on(engine, at_head(GATEWAY_CHAIN)) and await on(engine, at_head(AUDIT_CHAIN))
    assert "alembic_version" not in await on(engine, tables)


async def test_the_receiver_database_holds_only_the_receivers_tables(engine: AsyncEngine) -> None:
    await migrate_receiver(engine)
    await migrate_receiver(engine)
    assert await on(engine, data_tables) == RECEIVER_TABLES | RECEIVER_ADDED | {"supervision_log"}
    assert await on(engine, differences(receiver_migrations.metadata(), audit_metadata())) == []
    assert await on(engine, at_head(RECEIVER_CHAIN)) and await on(engine, at_head(AUDIT_CHAIN))


async def test_both_chains_share_one_database(engine: AsyncEngine) -> None:
    """One PostgreSQL database for both services (docker-compose.yml): each chain keeps its own version table."""
    await migrate_gateway(engine)
    await migrate_receiver(engine)
    await migrate_gateway(engine)
    assert await on(engine, data_tables) == GATEWAY_TABLES | RECEIVER_TABLES | ADDED | {"supervision_log"}
    meta = (gateway_migrations.metadata(), receiver_migrations.metadata(), audit_metadata())
    assert await on(engine, differences(*meta)) == []
    for chain in (GATEWAY_CHAIN, RECEIVER_CHAIN, AUDIT_CHAIN):
        assert await on(engine, at_head(chain))


def test_the_split_covers_the_old_schema_exactly() -> None:
    """Every table of the old chain has one owner, and each chain's models are its old tables (plus new ones)."""
    owners = [GATEWAY_CHAIN.legacy_tables, RECEIVER_CHAIN.legacy_tables, AUDIT_CHAIN.legacy_tables]
    assert set().union(*owners) == LEGACY_TABLES and sum(map(len, owners)) == len(LEGACY_TABLES)
    versions = (LEGACY_CHAIN.directory / "versions").glob("*.py")
    created = {t for f in versions for t in re.findall(r'create_table\(\s*"(\w+)"', f.read_text())}
    assert created == LEGACY_TABLES
    assert GATEWAY_TABLES <= set(gateway_migrations.metadata().tables)
    assert RECEIVER_TABLES <= set(receiver_migrations.metadata().tables)
    assert set(audit_metadata().tables) == {"supervision_log"}


# --- databases of the old single chain -------------------------------------------------------------------------
@pytest.fixture
async def fresh(db_url: str, tmp_path: Path) -> Any:
    """``fresh(*migrations)``: the schema of a new database of the same kind built by ``migrations``."""

    async def schema_of(url: str, migrations: tuple[Callable[[AsyncEngine], Any], ...]) -> dict[str, Any]:
        eng = create_engine(url)
        try:
            for m in migrations:
                await m(eng)
            got: dict[str, Any] = await on(eng, schema)
            return got
        finally:
            await eng.dispose()

    async def build(*migrations: Callable[[AsyncEngine], Any]) -> dict[str, Any]:
        if db_url.startswith("sqlite"):
            return await schema_of(f"sqlite+aiosqlite:///{tmp_path}/fresh-{os.urandom(3).hex()}.db", migrations)
        name = unique_db_name("trygg_fresh")
        await create_database(admin_dsn(), name)
        try:
            return await schema_of(with_database(admin_dsn(), name, driver="asyncpg"), migrations)
        finally:
            await drop_database(admin_dsn(), name)

    return build


async def test_old_gateway_database_keeps_its_rows_and_loses_the_receivers_empty_tables(
    engine: AsyncEngine, fresh: Any
) -> None:
    await on(engine, old_database())
    before = await on(engine, fill(GATEWAY_TABLES | {"supervision_log"}))
    await migrate_gateway(engine)
    assert comparable(kept(await on(engine, read(GATEWAY_TABLES | {"supervision_log"})), before)) == comparable(before)
    # the receiver's (empty) tables gone
    assert await on(engine, data_tables) == GATEWAY_TABLES | GATEWAY_ADDED | {"supervision_log"}
    assert "alembic_version" not in await on(engine, tables)
    assert await on(engine, at_head(GATEWAY_CHAIN)) and await on(engine, at_head(AUDIT_CHAIN))
    assert await on(engine, schema) == await fresh(migrate_gateway)
    await migrate_gateway(engine)  # and again: nothing more happens
    assert comparable(kept(await on(engine, read(GATEWAY_TABLES | {"supervision_log"})), before)) == comparable(before)


async def test_old_receiver_database_keeps_its_rows_and_loses_the_gateways_empty_tables(
    engine: AsyncEngine, fresh: Any
) -> None:
    await on(engine, old_database())
    before = await on(engine, fill(RECEIVER_TABLES | {"supervision_log"}))
    await migrate_receiver(engine)
    assert comparable(kept(await on(engine, read(RECEIVER_TABLES | {"supervision_log"})), before)) == comparable(before)
    assert await on(engine, data_tables) == RECEIVER_TABLES | RECEIVER_ADDED | {"supervision_log"}
    assert "alembic_version" not in await on(engine, tables)
    assert await on(engine, schema) == await fresh(migrate_receiver)


async def test_old_database_behind_its_head_is_brought_up_first(engine: AsyncEngine, fresh: Any) -> None:
    """A database at 0002 (before credentials, check-ins and the fleet): the old chain runs to 0006, then stamps."""
    await on(engine, old_database("0002"))
    old_tables = {"devices", "intake_alarms", "outbox"}
    before = await on(engine, fill(old_tables))
    await migrate_gateway(engine)
    after = await on(engine, read(old_tables))
    for name in ("intake_alarms", "outbox"):  # 0005 added columns to devices only (g0003 one to intake_alarms)
        assert comparable(kept({name: after[name]}, before)) == comparable({name: before[name]})
    assert [d["id"] for d in after["devices"]] == [d["id"] for d in before["devices"]]
    assert {d["supervision_class"] for d in after["devices"]} == {"alarm"}  # 0005's server default
    assert await on(engine, schema) == await fresh(migrate_gateway)


async def test_rows_in_the_other_services_tables_are_never_dropped(engine: AsyncEngine) -> None:
    """A gateway database whose receiver tables hold rows (misconfigured, or shared): kept, and the old version
    table stays until the receiver adopts them."""
    await on(engine, old_database())
    before = await on(engine, fill(set(LEGACY_TABLES)))
    await migrate_gateway(engine)
    assert await on(engine, data_tables) == LEGACY_TABLES | GATEWAY_ADDED
    assert "alembic_version" in await on(engine, tables)
    assert comparable(kept(await on(engine, read(set(LEGACY_TABLES))), before)) == comparable(before)


async def test_shared_old_database_is_adopted_by_both_services_in_either_order(engine: AsyncEngine, fresh: Any) -> None:
    await on(engine, old_database())
    before = await on(engine, fill(set(LEGACY_TABLES)))
    await migrate_receiver(engine)  # docker-compose.yml starts the receiver first
    assert "alembic_version" in await on(engine, tables)  # the gateway's tables still wait for their owner
    await migrate_gateway(engine)
    assert "alembic_version" not in await on(engine, tables)
    assert comparable(kept(await on(engine, read(set(LEGACY_TABLES))), before)) == comparable(before)
    for chain in (GATEWAY_CHAIN, RECEIVER_CHAIN, AUDIT_CHAIN):
        assert await on(engine, at_head(chain))
    assert await on(engine, schema) == await fresh(migrate_gateway, migrate_receiver)


async def test_shared_old_database_whose_receiver_tables_are_empty(engine: AsyncEngine, fresh: Any) -> None:
    """The gateway adopts first and drops the receiver's empty tables; the receiver then builds them anew."""
    await on(engine, old_database())
    before = await on(engine, fill(GATEWAY_TABLES | {"supervision_log"}))
    await migrate_gateway(engine)
    assert not await on(engine, data_tables) & RECEIVER_TABLES
    await migrate_receiver(engine)
    assert await on(engine, data_tables) == LEGACY_TABLES | ADDED
    assert comparable(kept(await on(engine, read(GATEWAY_TABLES | {"supervision_log"})), before)) == comparable(before)
    assert await on(engine, schema) == await fresh(migrate_gateway, migrate_receiver)


async def test_an_old_database_missing_some_of_a_services_tables_is_refused(engine: AsyncEngine) -> None:
    await on(engine, old_database())
    await on(engine, lambda conn: conn.execute(sa.text("DROP TABLE install_tests")))
    with pytest.raises(LegacySchemaError, match="install_tests"):
        await migrate_gateway(engine)
    assert "alembic_version" in await on(engine, tables)  # nothing half-done (one transaction on PostgreSQL)


async def test_an_old_version_table_naming_an_unknown_revision_is_refused(engine: AsyncEngine) -> None:
    await on(engine, old_database())
    await on(engine, lambda conn: conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'")))
    with pytest.raises(LegacySchemaError, match="0099"):
        await migrate_gateway(engine)


def test_trygg_db_upgrade_brings_both_old_databases_onto_their_chains(tmp_path: Path) -> None:
    """The command, as its own process: two SQLite databases of the old chain, with rows in each."""
    gw_url, rx_url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db", f"sqlite+aiosqlite:///{tmp_path}/receiver.db"

    async def prepare() -> tuple[Rows, Rows]:
        got = []
        for url, names in ((gw_url, GATEWAY_TABLES), (rx_url, RECEIVER_TABLES)):
            eng = create_engine(url)
            await on(eng, old_database())
            got.append(await on(eng, fill(names)))
            await eng.dispose()
        return got[0], got[1]

    gw_rows, rx_rows = asyncio.run(prepare())
    env = {
        **os.environ,
        "TRYGG_CONFIG_FILE": "/nonexistent",
        "TRYGG_DATA_DIR": str(tmp_path / "data"),
        "TRYGG_GATEWAY_DATABASE_URL": gw_url,
        "TRYGG_RECEIVER_DATABASE_URL": rx_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "trygg_cli", "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "schema is up to date"

    async def check() -> None:
        for url, names, rows, others in (
            (gw_url, GATEWAY_TABLES, gw_rows, RECEIVER_TABLES),
            (rx_url, RECEIVER_TABLES, rx_rows, GATEWAY_TABLES),
        ):
            eng = create_engine(url)
            assert comparable(kept(await on(eng, read(names)), rows)) == comparable(rows)
            assert not await on(eng, data_tables) & others
            assert "alembic_version" not in await on(eng, tables)
            await eng.dispose()

    asyncio.run(check())


@pytest.mark.postgres
async def test_two_services_starting_together_on_one_database_migrate_in_turn(pg_fresh_url: str) -> None:
    """docker-compose.yml gives both services one PostgreSQL database; both migrate when they start."""
    engines = [create_engine(pg_fresh_url) for _ in range(2)]
    try:
        await on(engines[0], old_database())  # the worst case: both adopt an old database at once
        await asyncio.gather(migrate_gateway(engines[0]), migrate_receiver(engines[1]))
        assert await on(engines[0], data_tables) == LEGACY_TABLES | ADDED
        assert "alembic_version" not in await on(engines[0], tables)
        for chain in (GATEWAY_CHAIN, RECEIVER_CHAIN, AUDIT_CHAIN):
            assert await on(engines[0], at_head(chain))
    finally:
        for engine in engines:
            await engine.dispose()


# --- revisions after the split ---------------------------------------------------------------------------------
def gateway_chain_at(revision: str) -> Callable[[Connection], None]:
    """A gateway database built by its own chain up to ``revision`` (and the supervision log at its head)."""

    def work(conn: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(AUDIT_CHAIN, conn), "heads")
        command.upgrade(alembic_config(GATEWAY_CHAIN, conn), revision)

    return work


@pytest.mark.parametrize("start", ["old chain at 0006", "gateway chain at g0002"])
async def test_g0003_keeps_only_the_gateways_own_test_decision(engine: AsyncEngine, start: str) -> None:
    """g0003 (issue 8) on a database that already holds alarms: an alarm is a test only where the gateway's own
    installation test names it, whatever its stored payload claims; the dead-letter table is made. Both ways a
    database reaches g0002: adopted from the old chain (g0001, then g0002), or built by the gateway's chain before
    g0003."""
    await on(engine, old_database() if start.startswith("old") else gateway_chain_at("g0002"))
    now = datetime(2026, 11, 1, 2, tzinfo=UTC)

    def rows(conn: Connection) -> None:
        conn.execute(
            sa.text(
                "INSERT INTO devices (id, type, registered_at, supervision_class) VALUES ('p1', 'pendant', :t, 'alarm')"
            ),
            {"t": now},
        )
        for alarm_id, payload in (
            ("real-test", '{"alarm_id": "real-test", "type": "fall", "is_test": true}'),
            ("hidden", '{"alarm_id": "hidden", "type": "fall", "is_test": true}'),  # a device's own claim
            ("plain", '{"alarm_id": "plain", "type": "fall"}'),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO intake_alarms (device_id, alarm_id, type, priority, device_ts, stored_at, payload) "
                    "VALUES ('p1', :a, 'fall', 8, :t, :t, :p)"
                ),
                {"a": alarm_id, "t": now, "p": payload},
            )
        conn.execute(
            sa.text(
                "INSERT INTO install_tests (device_id, started_by, started_at, deadline, state, alarm_id) "
                "VALUES ('p1', 'tech', :t, :t, 'passed', 'real-test')"
            ),
            {"t": now},
        )

    await on(engine, rows)
    await migrate_gateway(engine)
    await migrate_gateway(engine)  # idempotent
    got = await on(
        engine, lambda conn: dict(conn.execute(sa.text("SELECT alarm_id, is_test FROM intake_alarms")).all())
    )
    assert got == {"real-test": True, "hidden": False, "plain": False}
    assert "dead_letters" in await on(engine, data_tables)
    assert await on(engine, at_head(GATEWAY_CHAIN))
    assert await on(engine, differences(gateway_migrations.metadata(), audit_metadata())) == []

    def downgrade(conn: Connection) -> None:
        from alembic import command

        command.downgrade(alembic_config(GATEWAY_CHAIN, conn), "g0002")

    await on(engine, downgrade)  # and back: the rows stay, the column and the table go
    assert "dead_letters" not in await on(engine, data_tables)
    columns = await on(engine, lambda conn: {c["name"] for c in sa.inspect(conn).get_columns("intake_alarms")})
    assert "is_test" not in columns and "alarm_id" in columns
    alarms = await on(engine, lambda conn: {r[0] for r in conn.execute(sa.text("SELECT alarm_id FROM intake_alarms"))})
    assert alarms == {"real-test", "hidden", "plain"}
