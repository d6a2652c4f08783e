"""The DC-09 dialler load both DC-09 benches put on a receiver: my-dc09-spt's frames and TCP transport
(``testing.dc09.Dialler``), ``units`` units, each waiting for its answer before its next message (as a DC-09 unit
does), alarms handed out round-robin on an absolute schedule at ``rate``. Latency is from just before the send to the
answer, in the unit's thread. Each unit sends one NULL link test first, not measured. CPU (user + system, from
/proc) of the processes given, and of this one (the diallers), is taken from the first send to the last answer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import percentile
from bench._proto_common import Load
from testing.dc09 import Dialler

ACCOUNT_BASE = 0x100000  # accounts 100000, 100001, ... (hex)


def account_of(i: int) -> str:
    return f"{ACCOUNT_BASE + i:X}"


@dataclass
class Result:
    sent: int = 0
    answered: int = 0
    latencies_s: list[float] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds of each process from first send to last answer
    loadavg: tuple[float, float] = (0.0, 0.0)  # one-minute load average at the first send and at the end

    def cpu_ms_per_alarm(self) -> dict[str, float]:
        return {name: round(s * 1000 / max(self.answered, 1), 3) for name, s in self.cpu_s.items()}

    def p(self, q: float) -> float:
        return round(percentile(sorted(x * 1000 for x in self.latencies_s), q), 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(load: Load, port: int, *, transport: str = "tcp", pids: Mapping[str, int] | None = None) -> Result:
    # receiver and line numbers on every frame: pysiaalarm requires them
    units = [Dialler(port, account_of(i), transport=transport, receiver=1, line=1) for i in range(load.units)]  # type: ignore[arg-type]
    frames = []
    for i in range(load.alarms):
        unit = units[i % load.units]
        token, content = Dialler.sia(unit.account, "MA", zone=str(i % 100 + 1))
        frames.append((unit, unit.next_seq(), token, content))
    result = Result()
    locks = [asyncio.Lock() for _ in units]  # one message in flight per unit
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=load.units)

    def exchange(unit: Dialler, seq: int, token: str, content: str) -> tuple[str | None, float]:
        raw = unit.frame(token, content, seq)
        start = time.perf_counter()
        try:
            answer = unit._exchange(raw, seq)
        except Exception:
            answer = None
        return answer, time.perf_counter() - start

    async def one(i: int) -> None:
        unit, seq, token, content = frames[i]
        async with locks[i % load.units]:
            result.sent += 1
            answer, took = await loop.run_in_executor(pool, exchange, unit, seq, token, content)
        if answer == "ACK":
            result.answered += 1
            result.latencies_s.append(took)
        result.last = time.perf_counter()

    # warm-up, not measured: one NULL link test per unit (units poll anyway; the receiver's first frames pay for
    # connections and statement caches)
    await asyncio.gather(*(loop.run_in_executor(pool, unit._exchange, unit.frame("NULL", "]", 0), 0) for unit in units))
    measured = dict(pids or {}) | {"diallers": os.getpid()}
    cpu0 = {name: cpu_seconds(pid) for name, pid in measured.items()}
    load0 = os.getloadavg()[0]
    result.first = t0 = time.perf_counter()
    tasks = []
    for i in range(load.alarms):
        delay = t0 + i / load.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule, not synchronisation
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    result.cpu_s = {name: cpu_seconds(pid) - cpu0[name] for name, pid in measured.items()}
    result.loadavg = (round(load0, 2), round(os.getloadavg()[0], 2))
    pool.shutdown()
    return result


def report(figures: object, load: Load, out: str) -> None:
    """Print the figures and write them, with the load and the machine (shared: its load average), to ``out``."""
    import dataclasses
    import os
    from pathlib import Path

    from bench._common import machine, write_json

    data = {
        "load": dataclasses.asdict(load),
        "figures": dataclasses.asdict(figures),  # type: ignore[call-overload]
        "machine": machine() | {"nproc": os.cpu_count(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]},
        "note": "machine shared with other work while measured: compare figures of the same run only",
    }
    print(figures)
    write_json(Path(out), data)
