"""Measurement only: what the gateway process does per alarm, counted while a bench runs.

Put this directory on ``PYTHONPATH`` and Python imports this file in every process it starts; in a gateway
(``python -m trygg_cli gateway``, as ``bench.alarm_latency`` starts it) it counts SQL statements by kind, commits
and HTTP POSTs, and writes the counts as JSON every second to ``$GWCOUNT_OUT`` (default
``bench/results/gateway_counts.json``). Any other process is left alone::

    GWCOUNT_OUT=/tmp/counts.json PYTHONPATH=.:bench/gateway_counts .venv/bin/python -m bench.alarm_latency ...
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from typing import Any

with open("/proc/self/cmdline", "rb") as _f:
    _CMD = _f.read().split(b"\0")

if b"trygg_cli" in _CMD and b"gateway" in _CMD:
    import httpx
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counts: collections.Counter[str] = collections.Counter()

    def _kind(statement: str) -> str:
        low = statement.lower()
        first = low.lstrip().split(maxsplit=1)[0]
        if "row_number()" in low:
            return "select pending rows (fair query)"
        if first == "update" and "outbox" in low:
            return "update outbox (delivered mark)"
        if first == "select" and "count(" in low:
            return "select backlog count"
        if first == "insert":
            return "insert " + low.split()[2]
        return first

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts[_kind(statement)] += 1

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        counts["commit"] += 1

    _post = httpx.AsyncClient.post

    async def _counted_post(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
        counts["http post"] += 1
        return await _post(self, *args, **kwargs)

    httpx.AsyncClient.post = _counted_post  # type: ignore[method-assign]

    def _write() -> None:
        out = os.environ.get("GWCOUNT_OUT", "bench/results/gateway_counts.json")
        while True:
            time.sleep(1)
            with open(out, "w") as f:
                json.dump(dict(counts), f, indent=1, sort_keys=True)

    threading.Thread(target=_write, name="gateway-counts", daemon=True).start()
