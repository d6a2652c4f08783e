"""A real HAProxy (Debian's package) in front of receivers, with the shipped configuration
(``config/haproxy/haproxy.cfg``: its addresses come from the environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from testing.broker import free_port, wait_port

CONFIG = Path(__file__).resolve().parent.parent / "config" / "haproxy" / "haproxy.cfg"


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if not found:
        raise RuntimeError("haproxy is not installed: .ci/run installs it (apt-get install haproxy)")
    return found


@dataclass
class HAProxy:
    """``receivers``: the receivers' ``host:port``, two of them (the shipped configuration names two)."""

    receivers: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        first, second = self.receivers
        return os.environ | {
            "TRYGG_HAPROXY_BIND": f"127.0.0.1:{self.port}",
            "TRYGG_RECEIVER1": first,
            "TRYGG_RECEIVER2": second,
        }

    def start(self) -> None:
        binary = haproxy_binary()
        subprocess.run([binary, "-c", "-q", "-f", str(CONFIG)], env=self.env(), check=True)
        self.proc = subprocess.Popen([binary, "-db", "-f", str(CONFIG)], env=self.env())
        wait_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
