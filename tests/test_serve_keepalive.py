"""The services' HTTP servers keep an idle connection open longer than the services' own HTTP clients (httpx keeps
one 5 s): with uvicorn's default of 5 s the server closed it just as a client reused it, and that request failed
(the gateway answered a token check with 503 ``auth.check_unavailable``, seen in the suite; the forwarder's next
batch failed and waited for a retry)."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from testing.broker import free_port
from trygg.serve import SERVER_KEEP_ALIVE_S, serving


async def test_an_idle_connection_outlives_the_clients_keep_alive() -> None:
    client_keeps_s = httpx.Limits().keepalive_expiry  # what the services' clients use (httpx's default)
    assert client_keeps_s is not None and SERVER_KEEP_ALIVE_S > client_keeps_s + 5
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    port = free_port()
    async with serving(app, "127.0.0.1", port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.wait_for(reader.readexactly(length), 5)
        # Past the client's keep-alive plus a margin: nothing to wait on but the clock. A server that closed the
        # connection by then has sent its FIN, which read() sees as the end of the stream.
        await asyncio.sleep(client_keeps_s + 1.5)
        assert not reader.at_eof(), "the server closed the idle connection"
        writer.write(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        again = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert again.startswith(b"HTTP/1.1 200"), "the idle connection was still served"
        writer.close()
