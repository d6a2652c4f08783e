"""Revision 0007 on a database that already holds alarms, on SQLite and a real PostgreSQL: an alarm is a test
only where the gateway's own installation test names it, whatever its stored payload claims."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from trygg.db import _alembic_config, create_engine, migrate


def _upgrade_to(revision: str) -> object:
    def run(connection: Connection) -> None:
        from alembic import command

        command.upgrade(_alembic_config(connection), revision)

    return run


async def test_0007_keeps_only_the_gateways_own_test_decision(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to("0006"))  # type: ignore[arg-type]
            now = datetime(2026, 11, 1, 2, tzinfo=UTC)
            await conn.execute(
                text(
                    "INSERT INTO devices (id, type, registered_at, supervision_class) "
                    "VALUES ('p1', 'pendant', :t, 'alarm')"
                ),
                {"t": now},
            )
            for alarm_id, payload in (
                ("real-test", '{"alarm_id": "real-test", "type": "fall", "is_test": true}'),
                ("hidden", '{"alarm_id": "hidden", "type": "fall", "is_test": true}'),  # a device's own claim
                ("plain", '{"alarm_id": "plain", "type": "fall"}'),
            ):
                await conn.execute(
                    text(
                        "INSERT INTO intake_alarms "
                        "(device_id, alarm_id, type, priority, device_ts, stored_at, payload) "
                        "VALUES ('p1', :a, 'fall', 8, :t, :t, :p)"
                    ),
                    {"a": alarm_id, "t": now, "p": payload},
                )
            await conn.execute(
                text(
                    "INSERT INTO install_tests (device_id, started_by, started_at, deadline, state, alarm_id) "
                    "VALUES ('p1', 'tech', :t, :t, 'passed', 'real-test')"
                ),
                {"t": now},
            )
        await migrate(engine)
        await migrate(engine)  # idempotent
        async with engine.connect() as conn:
            rows = dict((await conn.execute(text("SELECT alarm_id, is_test FROM intake_alarms"))).all())
        assert rows == {"real-test": True, "hidden": False, "plain": False}
    finally:
        await engine.dispose()
