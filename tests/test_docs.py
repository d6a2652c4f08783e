"""The docs keep up with the code: every setting in docs/configuration.md, every alarm type and ack
status in docs/contract.md, and only real settings in config/trygg.example.yaml."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from devices import AckStatus, AlarmAck, AlarmCancel, AlarmType, Heartbeat, Rejection, parse_alarm, parse_cancel
from trygg.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION_MD = ROOT / "docs" / "configuration.md"
CONTRACT_MD = ROOT / "docs" / "contract.md"
EXAMPLE_YAML = ROOT / "config" / "trygg.example.yaml"

REJECTION_CODES = (
    "oversize",
    "not_json",
    "not_object",
    "invalid",
    "device_mismatch",
    "unknown_device",
    "retired_device",
    "unknown_alarm",
    "alarm_id_reused",
    "too_deep",
    "duplicate_key",
    "unstorable",
)


def _mentions(text: str, word: str) -> bool:
    """``word`` in backticks, as the docs write identifiers (so ``door`` is not found in ``doors``)."""
    return f"`{word}`" in text


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    env = f"TRYGG_{field.upper()}"
    assert re.search(rf"`{env}`", text), f"{env} is missing from docs/configuration.md"
    assert _mentions(text, field), f"YAML key {field} is missing from docs/configuration.md"


def test_configuration_documents_no_stale_settings() -> None:
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    known = {f"TRYGG_{f.upper()}" for f in Settings.model_fields} | {"TRYGG_CONFIG_FILE"}
    documented = set(re.findall(r"`(TRYGG_[A-Z0-9_]+)`", text))
    assert documented - known == set(), "docs/configuration.md names settings that do not exist"


@pytest.mark.parametrize("alarm_type", [t.value for t in AlarmType])
def test_every_alarm_type_is_in_the_contract(alarm_type: str) -> None:
    assert _mentions(CONTRACT_MD.read_text(encoding="utf-8"), alarm_type), f"{alarm_type} missing from contract"


@pytest.mark.parametrize("status", [s.value for s in AckStatus])
def test_every_ack_status_is_in_the_contract(status: str) -> None:
    assert _mentions(CONTRACT_MD.read_text(encoding="utf-8"), status), f"ack status {status} missing from contract"


@pytest.mark.parametrize("code", REJECTION_CODES)
def test_every_rejection_code_is_in_the_contract(code: str) -> None:
    assert _mentions(CONTRACT_MD.read_text(encoding="utf-8"), code), f"rejection code {code} missing from contract"


def test_example_yaml_keys_are_settings_fields() -> None:
    data = yaml.safe_load(EXAMPLE_YAML.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data, "config/trygg.example.yaml is empty or not a mapping"
    unknown = sorted(set(data) - set(Settings.model_fields))
    assert unknown == [], f"keys in config/trygg.example.yaml that are not Settings fields: {unknown}"


def test_example_yaml_values_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example loads as a settings file (e.g. ``mqtt_protocol`` must stay a quoted string)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TRYGG_{name.upper()}", raising=False)
    monkeypatch.setenv("TRYGG_CONFIG_FILE", str(EXAMPLE_YAML))
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = Settings()
    defaults = Settings.model_construct()
    data = yaml.safe_load(EXAMPLE_YAML.read_text(encoding="utf-8"))
    assert settings.mqtt_protocol == "5"
    for key in data:
        if key == "intake_token" or key.endswith("_password"):
            continue
        assert getattr(settings, key) == getattr(defaults, key), f"example value of {key} is not the default"


def _json_examples() -> list[str]:
    return re.findall(r"```json\n(.*?)```", CONTRACT_MD.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_contract_examples_are_valid() -> None:
    """Every JSON example in docs/contract.md passes the gateway's validation (device topic: the example's id)."""
    examples = _json_examples()
    assert len(examples) >= 8
    for raw in examples:
        obj = json.loads(raw)
        device_id = obj.get("device_id", "dev-1")
        if "status" in obj:
            AlarmAck.model_validate_json(raw)
        elif "type" in obj:
            result = parse_alarm(device_id, raw.encode())
            assert not isinstance(result, Rejection), (raw, result)
        elif "alarm_id" in obj:
            assert isinstance(parse_cancel(device_id, raw.encode()), AlarmCancel), raw
        else:
            Heartbeat.model_validate_json(raw)


def _readme_commands() -> set[tuple[str, ...]]:
    """Command paths named in README's table: `trygg devices add ID ...` / `list` -> (devices, add), (devices, list)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| command | what it does |") :].split("\n\n", 1)[0]
    paths: set[tuple[str, ...]] = set()
    for row in table.splitlines()[2:]:
        group: tuple[str, ...] = ()
        for span in re.findall(r"`([^`]+)`", row.split(" | ")[0]):
            words = span.split()
            if words[0] == "trygg":
                words = words[1:]
            else:
                words = [*group, *words]
            names = []
            for word in words:
                if not re.fullmatch(r"[a-z][a-z0-9|-]*", word):
                    break
                names.append(word)
            group = tuple(names[:1])
            for last in names[-1].split("|"):
                paths.add((*names[:-1], last))
    return paths


def test_readme_command_table_is_true() -> None:
    """Every command README's table names exists, and every command of `trygg` is in the table."""
    import typer.main

    from trygg_cli.app import app

    root = typer.main.get_command(app)
    named = _readme_commands()
    for path in named:
        command: Any = root
        for name in path:
            assert hasattr(command, "commands") and name in command.commands, f"README names `trygg {' '.join(path)}`"
            command = command.commands[name]
    assert set(root.commands) == {path[0] for path in named}  # type: ignore[attr-defined]
