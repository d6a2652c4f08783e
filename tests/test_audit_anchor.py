"""The supervision log is anchored (issue 8, point 10): signed checkpoints outside the database let `trygg log
verify` detect the three attacks the hash chain alone lets through: deleting the newest entries, wiping the log,
rewriting it with every hash computed again. Plus forged or altered checkpoint lines, key rotation, the running
service's checkpoints and the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from alarm_receiver.db import migrate as migrate_receiver
from gateway.db import migrate as migrate_gateway
from testing.broker import Broker
from testing.harness import make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from trygg import audit
from trygg.audit import anchor
from trygg.audit.models import LogEntry
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings, get_settings
from trygg_cli.app import app as cli


@dataclass
class Log:
    engine: AsyncEngine
    key_file: Path
    checkpoints: Path
    public: str

    async def append(self, n: int) -> None:
        for i in range(n):
            async with session_factory(self.engine).begin() as s:
                await audit.append(s, actor="op1", action="checkin.look_started", client_ref="c1", subject=f"ck-{i}")

    async def checkpoint(self) -> None:
        await anchor.Checkpointer(
            session_factory(self.engine), "receiver", self.key_file, self.checkpoints, 60
        ).checkpoint()

    async def problems(self, *publics: str) -> list[str]:
        async with session_factory(self.engine)() as s:
            return await anchor.verify(
                s, "receiver", anchor.read(self.checkpoints), anchor.trusted_keys(publics or (self.public,))
            )

    async def chain_ok(self) -> bool:
        async with session_factory(self.engine)() as s:
            return (await audit.verify(s)).ok

    async def sql(self, statement: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(text(statement))


async def _log(url: str, tmp_path: Path) -> AsyncIterator[Log]:
    async with engine_scope(url) as engine:
        await migrate_receiver(engine)
        key = tmp_path / "keys" / "audit.pem"
        public = anchor.generate_key(key)
        log = Log(engine, key, tmp_path / "anchor" / "checkpoints.jsonl", public)
        await log.append(6)
        await log.checkpoint()
        yield log


@pytest_asyncio.fixture
async def sqlite_log(tmp_path: Path) -> AsyncIterator[Log]:
    async for log in _log(f"sqlite+aiosqlite:///{tmp_path}/receiver.db", tmp_path):
        yield log


@pytest_asyncio.fixture
async def pg_log(pg_fresh_url: str, tmp_path: Path) -> AsyncIterator[Log]:
    async for log in _log(pg_fresh_url, tmp_path):
        yield log


async def _rewrite_with_fresh_hashes(log: Log, from_id: int) -> None:
    """What an attacker with the database does: change an entry, then compute every hash after it again."""
    async with session_factory(log.engine).begin() as s:
        entries = list((await s.scalars(select(LogEntry).where(LogEntry.id >= from_id).order_by(LogEntry.id))).all())
        prev = (await s.get(LogEntry, from_id - 1)).hash if from_id > 1 else audit.GENESIS  # type: ignore[union-attr]
        for e in entries:
            if e.id == from_id:
                e.actor = "someone-else"
            e.prev_hash = f"tmp-{e.id}"  # the UNIQUE constraint: clear the old values first
            e.hash = f"tmp-h-{e.id}"
        await s.flush()
        for e in entries:
            e.prev_hash = prev
            e.hash = audit.entry_hash(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                client_ref=e.client_ref,
                subject=e.subject,
                details=dict(e.details or {}),
                prev_hash=prev,
            )
            prev = e.hash


async def _three_attacks(log: Log) -> None:
    assert await log.chain_ok() and await log.problems() == []

    # 1. the newest entries deleted: the chain alone still verifies, the checkpoint does not
    await log.sql("DELETE FROM supervision_log WHERE id > 4")
    assert await log.chain_ok()
    problems = await log.problems()
    assert len(problems) == 1 and "entry 6" in problems[0] and "truncated (it ends at entry 4)" in problems[0]

    # 2. wiped
    await log.sql("DELETE FROM supervision_log")
    assert await log.chain_ok()
    assert "wiped" in " ".join(await log.problems())


async def _rewrite_attack(log: Log) -> None:
    await _rewrite_with_fresh_hashes(log, 3)
    assert await log.chain_ok(), "the rewrite must fool the chain alone"
    problems = await log.problems()
    assert len(problems) == 1 and "entry 6 differs" in problems[0] and "rewritten" in problems[0]


async def test_truncation_and_wipe_are_detected_sqlite(sqlite_log: Log) -> None:
    await _three_attacks(sqlite_log)


async def test_rewrite_with_recomputed_hashes_is_detected_sqlite(sqlite_log: Log) -> None:
    await _rewrite_attack(sqlite_log)


async def test_the_three_attacks_on_postgresql(pg_log: Log) -> None:
    await _rewrite_attack(pg_log)
    await _three_attacks_after_rewrite(pg_log)


async def _three_attacks_after_rewrite(log: Log) -> None:
    await log.sql("DELETE FROM supervision_log WHERE id > 4")
    assert "truncated" in " ".join(await log.problems())
    await log.sql("DELETE FROM supervision_log")
    assert "wiped" in " ".join(await log.problems())


async def test_every_checkpoint_counts_not_only_the_last(sqlite_log: Log) -> None:
    await sqlite_log.append(3)
    await sqlite_log.checkpoint()  # entries 7-9, signed
    await _rewrite_with_fresh_hashes(sqlite_log, 2)
    problems = await sqlite_log.problems()
    assert [p.split(" differs")[0] for p in problems] == ["entry 6", "entry 9"]


async def test_forged_or_altered_lines_and_key_rotation(sqlite_log: Log, tmp_path: Path) -> None:
    lines = sqlite_log.checkpoints.read_text().splitlines()
    forged = json.loads(lines[0]) | {"last_id": 2}  # claims less was there: the signature no longer fits
    sqlite_log.checkpoints.write_text("\n".join([*lines, json.dumps(forged), "not json"]) + "\n")
    problems = await sqlite_log.problems()
    assert any("signature does not match" in p for p in problems) and any("line 3 is not" in p for p in problems)

    # rotation: a new key signs from now on; old checkpoints verify while the old public key is still trusted
    sqlite_log.checkpoints.write_text(lines[0] + "\n")
    new_key = tmp_path / "keys" / "audit-2.pem"
    new_public = anchor.generate_key(new_key)
    await sqlite_log.append(2)
    await anchor.Checkpointer(
        session_factory(sqlite_log.engine), "receiver", new_key, sqlite_log.checkpoints, 60
    ).checkpoint()
    assert await sqlite_log.problems(sqlite_log.public, new_public) == []
    assert any("not trusted" in p for p in await sqlite_log.problems(new_public))
    with pytest.raises(anchor.AnchorError):
        anchor.generate_key(new_key)  # never overwritten


async def test_the_service_checkpoints_as_its_log_grows(sqlite_log: Log) -> None:
    checkpointer = anchor.Checkpointer(
        session_factory(sqlite_log.engine), "receiver", sqlite_log.key_file, sqlite_log.checkpoints, 0.05
    )
    await checkpointer.start()
    try:
        await sqlite_log.append(2)

        async def signed_up_to_8() -> bool:
            return anchor.read(sqlite_log.checkpoints)[-1][1].last_id == 8  # type: ignore[union-attr]

        await eventually(signed_up_to_8, timeout=5, interval=0.02)
        count = len(anchor.read(sqlite_log.checkpoints))
        await asyncio.sleep(0.2)
        assert len(anchor.read(sqlite_log.checkpoints)) == count, "a checkpoint only when the log moved"
    finally:
        await checkpointer.stop()
    assert await sqlite_log.problems() == []


async def test_both_services_sign_at_start_and_stop(broker: Broker, tmp_path: Path) -> None:
    key, checkpoints = tmp_path / "audit.pem", tmp_path / "anchor" / "checkpoints.jsonl"
    anchor.generate_key(key)
    s = make_settings(tmp_path, broker.url, audit_signing_key_file=key, audit_checkpoint_file=checkpoints)
    await prepare_stores(s)
    async with running_receiver(s) as receiver, running_gateway(s, http=True):
        started = {c.db for _, c in anchor.read(checkpoints) if not isinstance(c, str)}
        assert started == {"gateway", "receiver"}
        async with receiver.sessions.begin() as session:
            await audit.append(session, actor="op1", action="alarm.acknowledge", subject="a-1")
    last = anchor.read(checkpoints)[-1][1]  # at stop: the entry made since the last checkpoint is signed
    assert not isinstance(last, str) and (last.db, last.last_id) == ("receiver", 1)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TRYGG_{name.upper()}", raising=False)
    paths = {
        "gateway": tmp_path / "gateway.db",
        "receiver": tmp_path / "receiver.db",
        "key": tmp_path / "audit.pem",
        "checkpoints": tmp_path / "checkpoints.jsonl",
    }
    monkeypatch.setenv("TRYGG_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("TRYGG_GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{paths['gateway']}")
    monkeypatch.setenv("TRYGG_RECEIVER_DATABASE_URL", f"sqlite+aiosqlite:///{paths['receiver']}")
    monkeypatch.setenv("TRYGG_AUDIT_SIGNING_KEY_FILE", str(paths["key"]))
    monkeypatch.setenv("TRYGG_AUDIT_CHECKPOINT_FILE", str(paths["checkpoints"]))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield paths
    get_settings.cache_clear()
    structlog.reset_defaults()


def test_the_command_line(cli_env: dict[str, Path]) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["log", "keygen", "--out", str(cli_env["key"])])
    assert made.exit_code == 0 and "public key:" in made.output

    async def fill() -> None:
        for db, migrate in (("gateway", migrate_gateway), ("receiver", migrate_receiver)):
            async with engine_scope(f"sqlite+aiosqlite:///{cli_env[db]}") as engine:
                await migrate(engine)
                for i in range(3):
                    async with session_factory(engine).begin() as s:
                        await audit.append(s, actor="op1", action="alarm.acknowledge", subject=f"a-{i}")

    asyncio.run(fill())
    assert runner.invoke(cli, ["log", "checkpoint"]).exit_code == 0
    ok = runner.invoke(cli, ["log", "verify"])
    assert ok.exit_code == 0 and "anchored" in ok.output, ok.output

    async def truncate() -> None:
        async with engine_scope(f"sqlite+aiosqlite:///{cli_env['receiver']}") as engine, engine.begin() as conn:
            await conn.execute(text("DELETE FROM supervision_log WHERE id = 3"))

    asyncio.run(truncate())
    broken = runner.invoke(cli, ["log", "verify"])
    assert broken.exit_code == 1 and "receiver" in broken.output and "truncated" in broken.output, broken.output
