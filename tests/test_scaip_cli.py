"""``trygg scaip add / list / remove``: the unit registry from the command line, as a technician runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def trygg(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {
            "TRYGG_CONFIG_FILE": "/nonexistent",
            "TRYGG_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
            "TRYGG_LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "trygg_cli", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_units_are_added_listed_and_removed(tmp_path: Path) -> None:
    assert trygg(tmp_path, "devices", "add", "pendant-5", "--type", "pendant").returncode == 0
    added = trygg(tmp_path, "scaip", "add", "4670005", "pendant-5", "--mre", "1", "--hbi", "2")
    assert added.returncode == 0, added.stderr
    assert "cid 4670005 did * -> pendant-5" in added.stdout
    unknown = trygg(tmp_path, "scaip", "add", "4670006", "nobody")
    assert unknown.returncode != 0 and "no registered device" in unknown.stdout + unknown.stderr
    listed = trygg(tmp_path, "scaip", "list").stdout.splitlines()
    assert len(listed) == 1 and listed[0].split("\t")[1:6] == ["4670005", "*", "-", "pendant-5", "mre=1"]
    unit_id = listed[0].split("\t")[0]
    assert trygg(tmp_path, "scaip", "remove", unit_id).returncode == 0
    assert trygg(tmp_path, "scaip", "list").stdout.strip() == ""
