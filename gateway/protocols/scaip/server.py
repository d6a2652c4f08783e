"""SIP transports for SCAIP: a UDP endpoint and a TCP server (asyncio), each message handed on with its peer.

A datagram is one message; a TCP stream is cut into messages by ``Content-Length`` (``sip.next_frame``). A stream
that overruns the size limit is answered 413 and closed (its framing cannot be trusted any more). Every open
connection is tracked and closed when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.protocols.scaip import metrics, sip

log = structlog.get_logger(__name__)

TCP_IDLE_S = 600.0  # a unit's connection with nothing on it this long is closed (it reconnects to send)


@dataclass(frozen=True, slots=True)
class Peer:
    transport: str  # "udp" | "tcp"
    addr: tuple[str, int]
    send: Callable[[bytes], bool]  # False when it could not be sent (the connection is gone)

    @property
    def label(self) -> str:
        return f"scaip:{self.transport}:{self.addr[0]}:{self.addr[1]}"


OnMessage = Callable[[bytes, Peer], None]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        transport = self.transport
        assert transport is not None

        def send(payload: bytes) -> bool:
            if transport.is_closing():
                return False
            transport.sendto(payload, addr)
            return True

        self.on_message(data, Peer("udp", (addr[0], addr[1]), send))

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable from a unit that went away
        log.info("scaip udp error", error_type=type(exc).__name__)


class ScaipServer:
    def __init__(self, host: str, port: int, transports: list[str], max_bytes: int, on_message: OnMessage) -> None:
        self.host = host
        self.port = port
        self.transports = transports
        self.max_bytes = max_bytes
        self.on_message = on_message
        self.udp_port: int | None = None
        self.tcp_port: int | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if "udp" in self.transports:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.on_message), local_addr=(self.host, self.port)
            )
            self._udp = transport
            self.udp_port = transport.get_extra_info("sockname")[1]
        if "tcp" in self.transports:
            self._tcp = await asyncio.start_server(self._serve, self.host, self.port)
            self.tcp_port = self._tcp.sockets[0].getsockname()[1]
        log.info("scaip receiver listening", host=self.host, udp=self.udp_port, tcp=self.tcp_port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)

    def local(self, transport: str) -> tuple[str, int]:
        return self.host, (self.udp_port if transport == "udp" else self.tcp_port) or 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peername = writer.get_extra_info("peername") or ("?", 0)
        addr = (str(peername[0]), int(peername[1]))

        def send(payload: bytes) -> bool:
            if writer.is_closing():
                return False
            writer.write(payload)
            return True

        peer = Peer("tcp", addr, send)
        buffer = bytearray()
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), TCP_IDLE_S)
                if not chunk:
                    break
                buffer += chunk
                while (frame := sip.next_frame(buffer, self.max_bytes)) is not None:
                    self.on_message(frame, peer)
        except sip.FrameTooLarge as exc:
            metrics.REJECTED.labels("oversize").inc()
            log.warning("scaip stream refused: message too large", peer=peer.label, reason=str(exc))
            send(sip.salvage_response(bytes(buffer[: self.max_bytes]), 413))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 2)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._connections.discard(task)
