"""Runs ASGI apps with uvicorn inside our own event loop (so the demo can run several at once).

HTTPS: uvicorn's own TLS when the service's ``*_tls_certfile``/``*_tls_keyfile`` are set. Client addresses:
uvicorn's proxy-headers middleware believes ``X-Forwarded-For``/``X-Forwarded-Proto`` only from the addresses in
``trusted_proxies`` (none by default, so a client cannot pick its own address to dodge the login throttle).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI

from trygg.settings import Settings

# Seconds an idle HTTP connection is kept open by the services' servers (see service_server).
SERVER_KEEP_ALIVE_S = 30


class _EmbeddedServer(uvicorn.Server):
    """A server that leaves SIGINT/SIGTERM to its host (the demo runs two in one loop and owns the signals).

    uvicorn's own handling re-raises the signal when a server has stopped; the next server then takes it for a
    second Ctrl-C and exits at once, skipping its lifespan shutdown (whose task is then cancelled with a
    traceback, and whose MQTT client outlives the broker)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    handle_signals: bool = True,
    certfile: Path | None = None,
    keyfile: Path | None = None,
    trusted_proxies: Sequence[str] = (),
) -> uvicorn.Server:
    """``handle_signals=False``: the caller stops the server (``should_exit``) on its own signal handling."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        # Longer than the services' HTTP clients keep an idle connection (httpx: 5 s). With uvicorn's default, also
        # 5 s, the server closed an idle connection just as a client reused it: the request failed with ReadError (the
        # gateway answered a token check 503, the forwarder retried a batch) on the first request after ~5 s idle.
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        ssl_certfile=str(certfile) if certfile else None,
        ssl_keyfile=str(keyfile) if keyfile else None,
        # uvicorn's default trusts X-Forwarded-For from 127.0.0.1: only the proxies we are told of.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) if trusted_proxies else "",
    )
    return uvicorn.Server(config) if handle_signals else _EmbeddedServer(config)


def service_server(
    app: FastAPI, settings: Settings, service: Literal["gateway", "receiver"], *, handle_signals: bool = True
) -> uvicorn.Server:
    """The server of ``service`` as its settings say: host, port, TLS, trusted proxies."""
    return server(
        app,
        getattr(settings, f"{service}_http_host"),
        getattr(settings, f"{service}_http_port"),
        handle_signals=handle_signals,
        certfile=getattr(settings, f"{service}_tls_certfile"),
        keyfile=getattr(settings, f"{service}_tls_keyfile"),
        trusted_proxies=settings.trusted_proxies,
    )


@asynccontextmanager
async def serving(
    app: FastAPI, host: str, port: int, *, srv: uvicorn.Server | None = None
) -> AsyncIterator[uvicorn.Server]:
    """Serve ``app`` (or run ``srv``, made with ``handle_signals=False``) in this event loop while the block runs;
    start-up failures are raised here."""
    srv = srv or server(app, host, port, handle_signals=False)
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
