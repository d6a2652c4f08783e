"""The floor under every "stored" answer: how long one durable SQLite commit takes on this machine's disk.

    .venv/bin/python -m bench.sqlite_commit [--commits 300] [--rows 10] [--out bench/results/sqlite_commit.json]

Commits ``--commits`` transactions of ``--rows`` alarm-sized rows (a row and an outbox row each, as the gateway's
intake writes them) to a new SQLite file in WAL mode with ``synchronous=FULL`` (trygg/db.py's pragmas), with the
standard library's sqlite3 and nothing else in the way, and prints the commit latency. Run it beside the protocol
benches: a receiver that answers only after the commit (Trygg) cannot answer faster than this, and every unit in
flight waits through a slow one; a receiver that answers first (pysiaalarm) never waits for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from bench._common import latency_summary, machine, write_json


def run(commits: int, rows: int) -> dict[str, object]:
    payload = json.dumps(
        {"type": "alarm", "text": "MA 1", "dc09": {"account": "100000", "seq": "0001"}} | {"x": "y" * 300}
    )
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-commit-") as tmp:
        db = sqlite3.connect(Path(tmp) / "store.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE alarms (device_id TEXT, alarm_id TEXT, payload TEXT, PRIMARY KEY (device_id, alarm_id))"
        )
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, device_id TEXT, alarm_id TEXT, delivered_at TEXT)")
        db.execute("CREATE INDEX ix_outbox_pending ON outbox (delivered_at, id)")
        took = []
        for n in range(commits):
            keys = [(f"unit-{i}", f"{n}-{i}") for i in range(rows)]
            start = time.perf_counter()
            db.execute("BEGIN")
            db.executemany("INSERT INTO alarms VALUES (?, ?, ?)", [(d, a, payload) for d, a in keys])
            db.executemany("INSERT INTO outbox (device_id, alarm_id) VALUES (?, ?)", keys)
            db.execute("COMMIT")
            took.append(time.perf_counter() - start)
        db.close()
    return {
        "commits": commits,
        "rows_per_commit": rows,
        "commit": latency_summary(took),
        "over_50_ms": sum(t > 0.05 for t in took),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/results/sqlite_commit.json"))
    args = parser.parse_args()
    before = os.getloadavg()
    result = run(args.commits, args.rows)
    print(json.dumps(result, indent=2))
    write_json(
        args.out,
        {
            "command": f"python -m bench.sqlite_commit --commits {args.commits} --rows {args.rows}",
            "result": result,
            "machine": machine()
            | {"nproc": os.cpu_count(), "loadavg_before": before, "loadavg_after": os.getloadavg()},
            "note": "shared machine: other engineers' tests and benches used the same disk and cores",
        },
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
