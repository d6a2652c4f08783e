"""Shared secrets: the services refuse a published default, a short or a missing secret, and say how to make one."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pydantic import SecretStr
from typer.testing import CliRunner

from alarm_receiver.app import create_app as create_receiver_app
from gateway.app import create_app as create_gateway_app
from testing.harness import make_settings
from trygg.secrets import InsecureSecret, check_service_secrets, new_token, secret_problems
from trygg.settings import Settings, get_settings
from trygg_cli.app import app as cli

DOCUMENTED_DEFAULT = "trygg-dev-intake-token-change-me"


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(tmp_path, "mqtt://127.0.0.1:1", **overrides)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"intake_token": SecretStr(DOCUMENTED_DEFAULT)}, "TRYGG_INTAKE_TOKEN"),
        ({"intake_token": SecretStr("trygg-compose-intake-token-change-me")}, "TRYGG_INTAKE_TOKEN"),
        ({"intake_token": SecretStr("short-but-random-9f3a")}, "TRYGG_INTAKE_TOKEN"),
        ({"intake_token": None}, "TRYGG_INTAKE_TOKEN"),
        ({"metrics_token": SecretStr("scrape-secret-123")}, "TRYGG_METRICS_TOKEN"),
        ({"metrics_token": SecretStr("a" * 40)}, "TRYGG_METRICS_TOKEN"),
    ],
)
def test_both_services_refuse_to_start(tmp_path: Path, overrides: dict[str, object], named: str) -> None:
    s = settings(tmp_path, **overrides)
    for create in (create_receiver_app, create_gateway_app):
        with pytest.raises(InsecureSecret) as refused:
            create(s)
        assert named in str(refused.value) and "trygg secrets token" in str(refused.value)


def test_service_broker_passwords_are_checked(tmp_path: Path) -> None:
    s = settings(tmp_path, gateway_mqtt_password=SecretStr("gateway"), receiver_mqtt_password=SecretStr("x" * 8))
    assert any("TRYGG_GATEWAY_MQTT_PASSWORD" in p for p in secret_problems(s, "gateway"))
    assert any("TRYGG_RECEIVER_MQTT_PASSWORD" in p for p in secret_problems(s, "receiver"))
    good = settings(tmp_path, gateway_mqtt_password=SecretStr(new_token()))
    check_service_secrets(good, "gateway")


def test_random_secrets_pass(tmp_path: Path) -> None:
    s = settings(tmp_path, intake_token=SecretStr(new_token()), metrics_token=SecretStr(new_token()))
    assert secret_problems(s, "receiver") == [] and secret_problems(s, "gateway") == []


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TRYGG_{name.upper()}", raising=False)
    monkeypatch.setenv("TRYGG_CONFIG_FILE", "/nonexistent")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    # The commands configured structlog to write to CliRunner's stderr, closed now: later tests must not inherit it.
    structlog.reset_defaults()


@pytest.mark.parametrize("service", ["receiver", "gateway"])
def test_the_command_names_the_setting(clean_env: None, tmp_path: Path, service: str) -> None:
    env = {
        "TRYGG_INTAKE_TOKEN": DOCUMENTED_DEFAULT,
        "TRYGG_RECEIVER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/r.db",
    }
    result = CliRunner().invoke(cli, [service], env=env)
    assert result.exit_code == 2, result.output
    assert "TRYGG_INTAKE_TOKEN" in result.output and "published default" in result.output


def test_compose_env_is_private_and_passes(clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / ".env.compose"
    runner = CliRunner()
    result = runner.invoke(cli, ["secrets", "compose-env", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in out.read_text().splitlines() if line and not line.startswith("#"))
    assert len(values["POSTGRES_PASSWORD"]) >= 32
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    assert secret_problems(get_settings(), "gateway") == [] and secret_problems(get_settings(), "receiver") == []
    # a second run keeps the file (the stack's database and broker already use those secrets)
    again = runner.invoke(cli, ["secrets", "compose-env", "--out", str(out)])
    assert (
        again.exit_code == 1
        and dict(line.split("=", 1) for line in out.read_text().splitlines() if line and not line.startswith("#"))
        == values
    )
    assert len(runner.invoke(cli, ["secrets", "token"]).output.strip()) >= 32
