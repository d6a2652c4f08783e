"""Runs ASGI apps with uvicorn inside our own event loop (so the demo can run several at once).

HTTPS: uvicorn's own TLS when the service's ``*_tls_certfile``/``*_tls_keyfile`` are set. Client addresses:
uvicorn's proxy-headers middleware believes ``X-Forwarded-For``/``X-Forwarded-Proto`` only from the addresses in
``trusted_proxies`` (none by default, so a client cannot pick its own address to dodge the login throttle).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI

from trygg.settings import Settings


def server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    trusted_proxies: Sequence[str] = (),
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        # uvicorn's default trusts X-Forwarded-For from 127.0.0.1: only the proxies we are told of.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) if trusted_proxies else "",
    )
    return uvicorn.Server(config)


def service_server(app: FastAPI, settings: Settings, service: Literal["gateway", "receiver"]) -> uvicorn.Server:
    """The server of ``service`` as its settings say: host, port, TLS, trusted proxies."""
    return server(
        app,
        getattr(settings, f"{service}_http_host"),
        getattr(settings, f"{service}_http_port"),
        certfile=getattr(settings, f"{service}_tls_certfile"),
        keyfile=getattr(settings, f"{service}_tls_keyfile"),
        trusted_proxies=settings.trusted_proxies,
    )


@asynccontextmanager
async def serving(
    app: FastAPI, host: str, port: int, *, srv: uvicorn.Server | None = None
) -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` (or run ``srv``) in this event loop while the block runs; start-up failures are raised here."""
    srv = srv or server(app, host, port)
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
