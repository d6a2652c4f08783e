"""A real Mosquitto for tests: own config, free port, optional password files and ACL.

With ``device_password_file`` it has the shipped layout (config/mosquitto/mosquitto.conf): the service listener on
``port`` (the services' password file) and a device listener on ``device_port`` whose client ids are the usernames.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto")
    if found is None and Path("/usr/sbin/mosquitto").exists():
        found = "/usr/sbin/mosquitto"
    if not found:
        raise RuntimeError("mosquitto is not installed: .ci/run installs it (apt-get install mosquitto)")
    return found


@dataclass
class Broker:
    """One Mosquitto process. ``restart()`` keeps the port (sessions are in memory, so they are lost)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    password_file: Path | None = None
    acl_file: Path | None = None
    extra_config: str = ""
    proc: subprocess.Popen[bytes] | None = None
    device_password_file: Path | None = None
    device_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def device_url(self) -> str:
        """The device listener (only with ``device_password_file``)."""
        return f"mqtt://127.0.0.1:{self.device_port}"

    def _listener(self, port: int, password_file: Path | None, *, devices: bool = False) -> list[str]:
        lines = [f"listener {port} 127.0.0.1"]
        if password_file:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if devices:
            lines.append("use_username_as_clientid true")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        return lines

    def config_text(self) -> str:
        if self.device_password_file is not None:
            lines = ["per_listener_settings true"]
            lines += self._listener(self.port, self.password_file)
            lines += self._listener(self.device_port, self.device_password_file, devices=True)
        else:
            lines = self._listener(self.port, self.password_file)
        lines += [
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "persistence false",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            "user root",
        ]
        return "\n".join(lines) + "\n" + self.extra_config

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config_text())
        log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.port)
        if self.device_password_file is not None:
            wait_port(self.device_port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
