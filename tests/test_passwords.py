"""Weak passwords are refused (issue 8, point 13): at least 12 characters, not on zxcvbn's list of common
passwords, not the username, not easy to guess; `trygg user add` and the account functions refuse them clearly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from alarm_receiver.auth import Role, WeakPassword, create_user
from alarm_receiver.db import migrate as migrate_receiver
from alarm_receiver.passwords import check_password
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings, get_settings
from trygg_cli.app import app as cli


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("password", "password.too_short"),
        ("correct-1", "password.too_short"),
        ("password1234", "password.common"),
        ("qwertyuiop123", "password.common"),
        ("1q2w3e4r5t6y", "password.common"),
        ("the-admin-account", "password.contains_username"),
        ("aaaaaaaaaaaaaaaa", "password.guessable"),
        ("Password12345!", "password.guessable"),
        ("1234567890123", "password.guessable"),
    ],
)
def test_refused(password: str, code: str) -> None:
    with pytest.raises(WeakPassword) as refused:
        check_password(password, "admin")
    assert refused.value.code == code, (password, refused.value.code)


@pytest.mark.parametrize("password", ["correct-horse-1", "tre glada kor i Skåne", "G7#pQ2!vLx9@tR"])
def test_accepted(password: str) -> None:
    check_password(password, "admin")


def test_minimum_can_be_raised() -> None:
    with pytest.raises(WeakPassword) as refused:
        check_password("correct-horse-1", "op", min_length=20)
    assert refused.value.params == {"min_length": 20}


async def test_create_user_refuses(tmp_path: Path) -> None:
    async with engine_scope(f"sqlite+aiosqlite:///{tmp_path}/r.db") as engine:
        await migrate_receiver(engine)
        async with session_factory(engine).begin() as session:
            with pytest.raises(WeakPassword):
                await create_user(session, "boss", "password", Role.ADMIN)
            await create_user(session, "boss", "correct-horse-1", Role.ADMIN)


@pytest.fixture
def receiver_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TRYGG_{name.upper()}", raising=False)
    monkeypatch.setenv("TRYGG_RECEIVER_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("TRYGG_CONFIG_FILE", "/nonexistent")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()

    async def schema() -> None:
        async with engine_scope(f"sqlite+aiosqlite:///{tmp_path}/cli.db") as engine:
            await migrate_receiver(engine)

    import asyncio

    asyncio.run(schema())
    yield
    get_settings.cache_clear()
    # The commands configured structlog to write to CliRunner's stderr, closed now: later tests must not inherit it.
    structlog.reset_defaults()


def test_user_add_refuses_with_a_clear_message(receiver_db: None) -> None:
    runner = CliRunner()
    refused = runner.invoke(cli, ["user", "add", "boss", "--role", "admin", "--password", "password"])
    assert refused.exit_code == 1 and "at least 12 characters" in refused.output
    common = runner.invoke(cli, ["user", "add", "boss", "--role", "admin", "--password", "password1234"])
    assert common.exit_code == 1 and "common passwords" in common.output
    made = runner.invoke(cli, ["user", "add", "boss", "--role", "admin", "--generate"])
    assert made.exit_code == 0 and "with password" in made.output
