"""Revisions r0002 (receiver) and g0002 (gateway), the two halves of the old chain's 0007_codes, on SQLite and
PostgreSQL: each applies to a database of the old single chain at 0006 holding rows from before codes (adopted,
then upgraded: the rows keep their English and get no code), the new columns work, and each downgrades cleanly to
its chain's baseline and comes back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alarm_receiver.db import RECEIVER_CHAIN
from alarm_receiver.db import migrate as migrate_receiver
from gateway.db import GATEWAY_CHAIN
from gateway.db import migrate as migrate_gateway
from trygg.db import create_engine
from trygg.schema import Chain, alembic_config
from trygg.schema.legacy import upgrade_legacy

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def _to(chain: Chain, revision: str, *, down: bool = False) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        cfg = alembic_config(chain, connection)
        if down:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)

    return run


def _head(chain: Chain) -> str:
    return str(ScriptDirectory.from_config(alembic_config(chain)).get_current_head())


def _columns(table: str) -> Callable[[Connection], list[str]]:
    return lambda c: [col["name"] for col in sa.inspect(c).get_columns(table)]


def _version(chain: Chain) -> Callable[[Connection], str]:
    return lambda c: str(c.execute(sa.text(f"SELECT version_num FROM {chain.version_table}")).scalar_one())


async def _old_database(engine: AsyncEngine, *inserts: tuple[str, dict[str, object]]) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_legacy)  # the old single chain at 0006
        for statement, params in inserts:
            await conn.execute(sa.text(statement), params)


async def _down_and_up(engine: AsyncEngine, chain: Chain, baseline: str, added: dict[str, set[str]]) -> None:
    """Downgrade ``chain`` to ``baseline`` (the ``added`` columns go, the rows stay), then upgrade it again."""
    async with engine.begin() as conn:
        await conn.run_sync(_to(chain, baseline, down=True))
        assert await conn.run_sync(_version(chain)) == baseline
        for table, columns in added.items():
            assert not columns & set(await conn.run_sync(_columns(table))), table
            assert (await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one() == 1, table
        await conn.run_sync(_to(chain, "heads"))
        for table, columns in added.items():
            assert columns <= set(await conn.run_sync(_columns(table))), table


async def test_r0002_applies_over_old_rows_and_downgrades(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await _old_database(
            engine,
            (
                "INSERT INTO queue_alarms (device_id, alarm_id, type, priority, state, escalation_level, is_test,"
                " device_ts, stored_at, received_at, updated_at, outcome, details) VALUES ('p1', 'a1', 'fall', 8,"
                " 'resolved', 0, false, :t, :t, :t, :t, 'missed: patrol visit sent', '{}')",
                {"t": T0},
            ),
            (
                "INSERT INTO alarm_events (alarm_pk, at, actor, action, note) "
                "SELECT id, :t, 'op', 'assign', 'assigned to pat: nyckel' FROM queue_alarms",
                {"t": T0},
            ),
        )
        await migrate_receiver(engine)  # adopted at r0001, then r0002
        async with engine.begin() as conn:
            assert await conn.run_sync(_version(RECEIVER_CHAIN)) == _head(RECEIVER_CHAIN)  # r0002 and what came after
            row = (await conn.execute(sa.text("SELECT note, code, params FROM alarm_events"))).one()
            assert row == ("assigned to pat: nyckel", None, None)  # old rows keep their English, no code
            alarm = (
                await conn.execute(sa.text("SELECT outcome, outcome_code, outcome_params FROM queue_alarms"))
            ).one()
            assert alarm == ("missed: patrol visit sent", None, None)
            await conn.execute(
                sa.text("UPDATE alarm_events SET code = 'alarm.assigned', params = :p"), {"p": '{"patrol": "pat"}'}
            )
            await conn.execute(
                sa.text("UPDATE queue_alarms SET outcome_code = 'checkin.missed', outcome_params = :p"), {"p": "{}"}
            )
            assert (await conn.execute(sa.text("SELECT code FROM alarm_events"))).scalar_one() == "alarm.assigned"
        added = {"alarm_events": {"code", "params"}, "queue_alarms": {"outcome_code", "outcome_params"}}
        await _down_and_up(engine, RECEIVER_CHAIN, "r0001", added)
    finally:
        await engine.dispose()


async def test_g0002_applies_over_old_rows_and_downgrades(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await _old_database(
            engine,
            (
                "INSERT INTO devices (id, type, registered_at, supervision_class)"
                " VALUES ('p1', 'pendant', :t, 'alarm')",
                {"t": T0},
            ),
            (
                "INSERT INTO device_health (device_id, status, last_seen, battery_pct, mains, flaps)"
                " VALUES ('p1', 'online', :t, 80, false, 0)",
                {"t": T0},
            ),
            (
                "INSERT INTO install_tests (device_id, started_by, started_at, deadline, state, detail)"
                " VALUES ('p1', 'tech', :t, :t, 'failed', 'no alarm within 120 s')",
                {"t": T0},
            ),
        )
        await migrate_gateway(engine)  # adopted at g0001, then g0002 (and g0003, issue 8's, after it)
        async with engine.begin() as conn:
            assert await conn.run_sync(_version(GATEWAY_CHAIN)) == _head(GATEWAY_CHAIN)  # g0002 and what came after
            health = (await conn.execute(sa.text("SELECT mains, has_mains FROM device_health"))).one()
            assert health == (False, None)  # not reported yet: the next heartbeat says
            test = (await conn.execute(sa.text("SELECT detail, detail_code FROM install_tests"))).one()
            assert test == ("no alarm within 120 s", None)
            await conn.execute(sa.text("UPDATE device_health SET has_mains = false"))
            await conn.execute(sa.text("UPDATE install_tests SET detail_code = 'test.no_alarm'"))
            has_mains = (await conn.execute(sa.text("SELECT has_mains FROM device_health"))).scalar_one()
            assert has_mains is not None and not has_mains  # a battery-only device (SQLite gives 0)
        added = {"device_health": {"has_mains"}, "install_tests": {"detail_code"}}
        await _down_and_up(engine, GATEWAY_CHAIN, "g0001", added)
    finally:
        await engine.dispose()
