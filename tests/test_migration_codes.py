"""Migration 0007_codes on SQLite and PostgreSQL: it applies to a database holding rows from before codes (they
keep their English and get no code), the new columns work, and it downgrades cleanly."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from trygg.db import _alembic_config, create_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/codes.db"
    url: str = request.getfixturevalue("pg_fresh_url")
    return url


def _to(revision: str, *, down: bool = False) -> object:
    def run(connection: Connection) -> None:
        cfg = _alembic_config(connection)
        if down:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)

    return run


async def test_0007_applies_over_old_rows_and_downgrades(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_to("0006"))
            await conn.execute(
                sa.text(
                    "INSERT INTO queue_alarms (device_id, alarm_id, type, priority, state, escalation_level, is_test,"
                    " device_ts, stored_at, received_at, updated_at, outcome, details) VALUES ('p1', 'a1', 'fall', 8,"
                    " 'resolved', 0, false, :t, :t, :t, :t, 'missed: patrol visit sent', '{}')"
                ),
                {"t": datetime(2026, 11, 29, 2, 0, tzinfo=UTC)},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO alarm_events (alarm_pk, at, actor, action, note) "
                    "SELECT id, :t, 'op', 'assign', 'assigned to pat: nyckel' FROM queue_alarms"
                ),
                {"t": datetime(2026, 11, 29, 2, 1, tzinfo=UTC)},
            )
        async with engine.begin() as conn:
            await conn.run_sync(_to("heads"))
            row = (await conn.execute(sa.text("SELECT note, code, params FROM alarm_events"))).one()
            assert row == ("assigned to pat: nyckel", None, None)  # old rows keep their English, no code
            alarm = (await conn.execute(sa.text("SELECT outcome, outcome_code FROM queue_alarms"))).one()
            assert alarm == ("missed: patrol visit sent", None)
            await conn.execute(
                sa.text("UPDATE alarm_events SET code = 'alarm.assigned', params = :p"), {"p": '{"patrol": "pat"}'}
            )
            for table, column in (("device_health", "has_mains"), ("install_tests", "detail_code")):
                await conn.execute(sa.text(f"SELECT {column} FROM {table}"))
        async with engine.begin() as conn:
            await conn.run_sync(_to("0006", down=True))
            columns = await conn.run_sync(lambda c: [col["name"] for col in sa.inspect(c).get_columns("alarm_events")])
            assert "code" not in columns and "params" not in columns
            await conn.run_sync(_to("heads"))
    finally:
        await engine.dispose()
