"""A simulated device's broker login: its own id and the password in ``sim_credentials_file``, as a real unit has.

The file (``device_id:password`` lines) is written by ``trygg broker provision --fleet-credentials``. Without it, the
URL's credentials (if any) are used, which only an open test broker accepts.
"""

from __future__ import annotations

from pathlib import Path

from trygg.mqtt import MqttEndpoint, parse_login_file
from trygg.settings import Settings

_cache: dict[Path, tuple[float, dict[str, str]]] = {}


def _logins(path: Path) -> dict[str, str]:
    mtime = path.stat().st_mtime
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        cached = (mtime, parse_login_file(path.read_text(encoding="utf-8")))
        _cache[path] = cached
    return cached[1]


def device_endpoint(settings: Settings, url: str, device_id: str) -> MqttEndpoint:
    """Where and as whom ``device_id`` connects: the device's own login when the credentials file has one."""
    password = _logins(settings.sim_credentials_file).get(device_id) if settings.sim_credentials_file else None
    username = device_id if password is not None else None
    return MqttEndpoint.from_url(url, username, password, ca_file=settings.mqtt_ca_file)
