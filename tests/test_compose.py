"""docker-compose.yml: well-formed, the five services, and the Trygg services run `trygg` subcommands."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
TRYGG_COMMANDS = {"gateway": ["gateway"], "receiver": ["receiver"], "sim": ["sim", "run"]}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return command.split()
    assert isinstance(command, list), f"no command in {service}"
    return [str(part) for part in command]


def test_compose_has_the_five_services() -> None:
    services = _compose()["services"]
    assert {"mosquitto", "postgres", "gateway", "receiver", "sim"} <= set(services)
    assert str(services["mosquitto"]["image"]).startswith("eclipse-mosquitto:2")
    assert str(services["postgres"]["image"]).startswith("postgres:16")
    assert any("./config/mosquitto" in str(v) for v in services["mosquitto"]["volumes"])


def test_trygg_services_run_a_trygg_subcommand() -> None:
    services = _compose()["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["trygg"]' in dockerfile
    for name, subcommand in TRYGG_COMMANDS.items():
        service = services[name]
        command = _command(service)
        # Either `trygg ...` in full, or just the subcommand with the image's `trygg` entrypoint.
        if command[:1] == ["trygg"]:
            command = command[1:]
        assert command[: len(subcommand)] == subcommand, f"{name}: {service.get('command')!r}"
        assert service.get("build") or service.get("image") == "trygg:local"
        env = service["environment"]
        # the services on the service listener, the simulated devices on the device listener
        assert env["TRYGG_MQTT_URL"] == ("mqtt://mosquitto:1884" if name == "sim" else "mqtt://mosquitto:1883")
        for key in ("TRYGG_GATEWAY_DATABASE_URL", "TRYGG_RECEIVER_DATABASE_URL"):
            assert str(env[key]).startswith("postgresql+asyncpg://"), key
        assert env["TRYGG_RECEIVER_URL"] == "http://receiver:8081"
        assert "TRYGG_INTAKE_TOKEN" in env
        assert "mosquitto" in service["depends_on"]


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = _compose()["services"]
    for name in ("mosquitto", "postgres", "gateway", "receiver"):
        assert "test" in services[name].get("healthcheck", {}), name


def _compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) when it is there, else Debian's `docker-compose` (v1, which validates
    the same Compose file format without a Docker engine); None without either."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _compose_env(tmp_path: Path) -> Path:
    """`.env.compose` as the documented command writes it."""
    from typer.testing import CliRunner

    from trygg_cli.app import app

    out = tmp_path / ".env.compose"
    result = CliRunner().invoke(app, ["secrets", "compose-env", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_docker_compose_config_is_valid(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    compose = _compose_command()
    if compose is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed (.ci/run installs it)")
    env_file = _compose_env(tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRYGG_", "POSTGRES_"))}

    def check(path: Path, env_file: Path | None = env_file) -> subprocess.CompletedProcess[str]:
        options = ["--env-file", str(env_file)] if env_file else ["--env-file", str(tmp_path / "empty.env")]
        return subprocess.run(
            [*compose, *options, "-f", str(path), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=clean,
        )

    result = check(COMPOSE)
    assert result.returncode == 0, result.stderr
    # without the secrets, Compose refuses and says which command makes them
    (tmp_path / "empty.env").write_text("")
    missing = check(COMPOSE, None)
    assert missing.returncode != 0 and "trygg secrets compose-env" in missing.stderr, missing.stderr
    # the check can fail: the same file with a service option Compose does not know
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["gateway"]["restart_policy_typo"] = "always"
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(yaml.safe_dump(broken))
    refused = check(bad)
    assert refused.returncode != 0 and "restart_policy_typo" in refused.stderr, refused.stderr


def test_trygg_service_commands_exist_in_the_cli() -> None:
    """Every command compose gives the image parses as a real `trygg` command line."""
    from typer.testing import CliRunner

    from trygg_cli.app import app

    services = _compose()["services"]
    runner = CliRunner()
    for name, service in services.items():
        if not (service.get("build") or service.get("image") == "trygg:local"):
            continue
        args = [str(a) for a in service["command"]]
        if args[:1] == ["trygg"]:
            args = args[1:]
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (name, args, result.output)


def test_compose_broker_is_not_anonymous() -> None:
    """compose.conf: every listener has its own password file and the ACL; devices' client ids are their usernames."""
    conf = (ROOT / "config" / "mosquitto" / "compose.conf").read_text()
    lines = [line.split("#", 1)[0].strip() for line in conf.splitlines()]
    lines = [line for line in lines if line]
    assert "per_listener_settings true" in lines and "allow_anonymous true" not in lines
    listeners: list[list[str]] = []
    for line in lines:
        if line.startswith("listener "):
            listeners.append([])
        elif listeners:
            listeners[-1].append(line)
    assert len(listeners) == 2
    for options in listeners:
        assert "allow_anonymous false" in options
        assert any(o.startswith("password_file ") for o in options) and any(o.startswith("acl_file ") for o in options)
    assert "use_username_as_clientid true" in listeners[1] and "use_username_as_clientid true" not in listeners[0]
    services = _compose()["services"]
    assert services["mosquitto"]["depends_on"]["provision"]["condition"] == "service_completed_successfully"
    for name in ("postgres", "gateway", "receiver"):
        env = services[name]["environment"]
        assert all("change-me" not in str(v) for v in env.values()), name


# --- docker-compose.ha.yml: every service at least twice (issue 13, docs/deployment.md "Several instances") ---
COMPOSE_HA = ROOT / "docker-compose.ha.yml"


def test_ha_compose_runs_two_brokers_three_gateways_and_two_receivers_behind_haproxy() -> None:
    services = yaml.safe_load(COMPOSE_HA.read_text())["services"]
    commands = {n: _command(s)[:1] for n, s in services.items() if "command" in s}
    gateways = [n for n, c in commands.items() if c == ["gateway"]]
    receivers = [n for n, c in commands.items() if c == ["receiver"]]
    assert len(gateways) == 3 and len(receivers) == 2, (gateways, receivers)
    for group in (gateways, receivers):
        names = [services[n]["environment"]["TRYGG_INSTANCE_NAME"] for n in group]
        assert len(set(names)) == len(names), names  # one broker session and one election name each
    for name in gateways + receivers:
        env = services[name]["environment"]
        assert env["TRYGG_MQTT_SHARED_GROUP"] == "trygg"
        assert env["TRYGG_RECEIVER_URL"] == "http://haproxy:8081"
        for key in ("TRYGG_GATEWAY_DATABASE_URL", "TRYGG_RECEIVER_DATABASE_URL"):
            assert str(env[key]).startswith("postgresql+asyncpg://"), key
    # two independent brokers: every gateway on both, the devices falling back to the second
    for name in ("mosquitto", "mosquitto2"):
        assert str(services[name]["image"]).startswith("eclipse-mosquitto:2"), name
    for name in gateways:
        env = services[name]["environment"]
        assert (env["TRYGG_MQTT_URL"], env["TRYGG_MQTT_SECOND_URL"]) == (
            "mqtt://mosquitto:1883",
            "mqtt://mosquitto2:1883",
        )
        assert {"mosquitto", "mosquitto2"} <= set(services[name]["depends_on"]), name
    sim = services["sim"]["environment"]
    assert (sim["TRYGG_MQTT_URL"], sim["TRYGG_SIM_FALLBACK_MQTT_URL"]) == (
        "mqtt://mosquitto:1884",
        "mqtt://mosquitto2:1884",
    )
    haproxy = services["haproxy"]
    assert str(haproxy["image"]).startswith("haproxy:2")
    assert {haproxy["environment"]["TRYGG_RECEIVER1"], haproxy["environment"]["TRYGG_RECEIVER2"]} == {
        f"{n}:8081" for n in receivers
    }


def test_ha_compose_config_is_valid(tmp_path: Path) -> None:
    compose = _compose_command() if shutil.which("docker") else None
    if compose is None:
        pytest.skip("neither the docker compose plugin nor docker-compose is installed (.ci/run installs it)")
    env_file = _compose_env(tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRYGG_", "POSTGRES_"))}
    result = subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_HA), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=clean,
    )
    assert result.returncode == 0, result.stderr
