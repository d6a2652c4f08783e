"""A SCAIP unit for tests and benches: sends ``<mrq>`` as SIP MESSAGE over UDP or TCP and waits for the
``<mrs>`` with the same ``ref``, resending as a unit does (HOLD, BUSY or nothing heard: again after a while).

It is deliberately not the receiver's code: it writes its SIP by hand and reads the answer with a regular
expression, as a unit's firmware would. The SIPp scenarios in ``tests/sipp/`` are the third-party peer; this unit
serves what SIPp cannot do easily here (retrying across a gateway that is killed, many units at a rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.protocols.scaip.registry import add_unit

_SNU = re.compile(rb"<mrs>.*?<ref>([0-9A-Za-z]{1,16})</ref>.*?<snu>([0-9])</snu>", re.DOTALL)
_CALL_ID = re.compile(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_HEADER = re.compile(rb"^(Via|From|To|Call-ID|CSeq)[ \t]*:[^\r\n]*", re.IGNORECASE | re.MULTILINE)
RETRY = frozenset({4, 6})  # HOLD, BUSY: resend later


def mrq(ref: str, cid: str, *, mty: str = "ME", dty: str = "0003", stc: str | None = "0010", **more: str) -> bytes:
    parts = [f"<ref>{ref}</ref>", "<ver>01.00</ver>", f"<mty>{mty}</mty>", f"<cid>{cid}</cid>", f"<dty>{dty}</dty>"]
    if stc is not None:
        parts.append(f"<stc>{stc}</stc>")
    parts += [f"<{k}>{v}</{k}>" for k, v in more.items()]
    return ('<?xml version="1.0" encoding="UTF-8"?><mrq>' + "".join(parts) + "</mrq>").encode()


def message(body: bytes, *, cid: str, local: tuple[str, int], remote: tuple[str, int], transport: str) -> bytes:
    call_id = secrets.token_hex(10)
    head = (
        f"MESSAGE sip:trygg@{remote[0]}:{remote[1]} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
        f"From: <sip:{cid}@{local[0]}:{local[1]}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:trygg@{remote[0]}:{remote[1]}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 MESSAGE\r\n"
        f"Contact: <sip:{cid}@{local[0]}:{local[1]};transport={transport}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/scaip+xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def ok_to(request: bytes) -> bytes:
    """200 OK to the receiver's MESSAGE (its Via, From, To, Call-ID, CSeq copied)."""
    head = request.split(b"\r\n\r\n", 1)[0]
    lines = [b"SIP/2.0 200 OK", *(m.group(0) for m in _HEADER.finditer(head)), b"Content-Length: 0"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass
class Answer:
    ref: str
    snu: int
    raw: bytes


@dataclass
class Unit:
    """One unit over UDP: ``send`` returns the first ``<mrs>`` for that ref (or None on timeout)."""

    remote: tuple[str, int]
    cid: str
    transport: str = "udp"
    answers: dict[str, asyncio.Queue[Answer]] = field(default_factory=dict)
    _udp: asyncio.DatagramTransport | None = None
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    local: tuple[str, int] = ("127.0.0.1", 0)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def open(self) -> Unit:
        loop = asyncio.get_running_loop()
        if self.transport == "udp":
            unit = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    unit._received(data, lambda b: unit._udp.sendto(b, addr) if unit._udp else None)

            transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
            self._udp = transport
            self.local = transport.get_extra_info("sockname")[:2]
        else:
            await self._connect()
        return self

    async def _connect(self) -> None:
        async with self._lock:
            if self._writer is not None and not self._writer.is_closing():
                return  # another send connected meanwhile
            self._reader, self._writer = await asyncio.open_connection(*self.remote)
            self.local = self._writer.get_extra_info("sockname")[:2]
            self._task = asyncio.create_task(self._read_tcp())

    async def _read_tcp(self) -> None:
        assert self._reader is not None and self._writer is not None
        buffer = b""
        reader, writer = self._reader, self._writer
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, rest = buffer.split(b"\r\n\r\n", 1)
                    found = re.search(rb"Content-Length[ \t]*:[ \t]*([0-9]+)", head, re.IGNORECASE)
                    length = int(found.group(1)) if found else 0
                    if len(rest) < length:
                        break
                    self._received(head + b"\r\n\r\n" + rest[:length], writer.write)
                    buffer = rest[length:]
        writer.close()  # the receiver went away: the next send connects again

    def _received(self, data: bytes, reply: object) -> None:
        if not data.startswith(b"MESSAGE "):
            return  # 200 OK to our request: the transport answer
        assert callable(reply)
        reply(ok_to(data))
        found = _SNU.search(data)
        if found:
            ref = found.group(1).decode()
            self.answers.setdefault(ref, asyncio.Queue()).put_nowait(Answer(ref, int(found.group(2)), data))

    async def send(self, body: bytes, ref: str, timeout: float = 10.0) -> Answer | None:
        queue = self.answers.setdefault(ref, asyncio.Queue())
        while not queue.empty():
            queue.get_nowait()
        data = message(body, cid=self.cid, local=self.local, remote=self.remote, transport=self.transport)
        try:
            if self._udp is not None:
                self._udp.sendto(data, self.remote)
            else:
                if self._writer is None or self._writer.is_closing():
                    await self._connect()
                assert self._writer is not None
                self._writer.write(data)
                await self._writer.drain()
        except (ConnectionError, OSError):
            if self._writer is not None:
                self._writer.close()
            return None
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return None

    async def send_until_ok(self, body: bytes, ref: str, *, deadline_s: float = 60.0, retry_s: float = 0.5) -> Answer:
        """Resend until snu 0 (or a final refusal), as a unit keeps an alarm until it is answered."""
        end = time.monotonic() + deadline_s
        while True:
            answer = await self.send(body, ref, timeout=min(5.0, max(0.1, end - time.monotonic())))
            if answer is not None and answer.snu not in RETRY:
                return answer
            if time.monotonic() > end:
                raise TimeoutError(f"no final answer for ref {ref}")
            await asyncio.sleep(retry_s)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def register_unit(session: AsyncSession, cid: str, device_id: str, **options: object) -> None:
    """Map a SCAIP identity to a registered device (the registry's own function)."""
    await add_unit(session, cid, device_id, **options)  # type: ignore[arg-type]
