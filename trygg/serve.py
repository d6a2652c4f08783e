"""Runs ASGI apps with uvicorn inside our own event loop (so the demo can run several at once)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI


class _EmbeddedServer(uvicorn.Server):
    """A server that leaves SIGINT/SIGTERM to its host (the demo runs two in one loop and owns the signals).

    uvicorn's own handling re-raises the signal when a server has stopped; the next server then takes it for a
    second Ctrl-C and exits at once, skipping its lifespan shutdown (whose task is then cancelled with a
    traceback, and whose MQTT client outlives the broker)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server(app: FastAPI, host: str, port: int, *, handle_signals: bool = True) -> uvicorn.Server:
    """``handle_signals=False``: the caller stops the server (``should_exit``) on its own signal handling."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    return uvicorn.Server(config) if handle_signals else _EmbeddedServer(config)


@asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` in this event loop while the block runs; start-up failures are raised here."""
    srv = server(app, host, port, handle_signals=False)
    task = asyncio.create_task(srv.serve())
    try:
        while not srv.started:
            if task.done():
                task.result()
                raise RuntimeError(f"server on {host}:{port} stopped during start-up")
            await asyncio.sleep(0.01)
        yield srv
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)
