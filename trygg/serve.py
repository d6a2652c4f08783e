"""Runs ASGI apps with uvicorn inside our own event loop (so the demo can run several at once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI


def server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
    )
    return uvicorn.Server(config)


@asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` in this event loop while the block runs; start-up failures are raised here."""
    srv = server(app, host, port)
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
