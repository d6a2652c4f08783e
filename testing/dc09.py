"""A DC-09 unit for tests and benchmarks, driven by **my-dc09-spt** (PyPI), a dialler nobody here wrote.

Its own code builds every frame (``dc09_msg.dc09block`` with ``dc03_msg``/``dc05_msg`` content, its AES and time
stamps), sends it over its own TCP or UDP transport (``TransPath``: a connection per message; UDP tries five times
a second apart) and checks the answer (``dc09answer``: CRC, length, sequence number, decrypting an encrypted ACK).
:meth:`Dialler.send_until_acked` repeats a message until it is acknowledged, as a DC-09 transmitter must: the
package's own event thread drops a message after one failed round, so tests that kill the receiver use this loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from my_dc09_spt.comm import TransPath
from my_dc09_spt.msg import dc03_msg, dc05_msg, dc09_msg

Transport = Literal["tcp", "udp"]


class Dialler:
    def __init__(
        self,
        port: int,
        account: str,
        *,
        transport: Transport = "tcp",
        key: bytes | None = None,
        receiver: int | None = None,
        line: int | None = None,
        host: str = "127.0.0.1",
        timeout_s: float = 5.0,
    ) -> None:
        self.host, self.port, self.account = host, port, account
        self.transport, self.key, self.receiver, self.line = transport, key, receiver, line
        self.timeout_s = timeout_s
        self.seq = 0

    def next_seq(self) -> int:
        self.seq = self.seq % 9999 + 1
        return self.seq

    @staticmethod
    def sia(account: str, code: str, zone: str | None = None, area: str | None = None) -> tuple[str, str]:
        params = {"code": code} | ({"zone": zone} if zone else {}) | ({"area": area} if area else {})
        return "SIA-DCS", str(dc03_msg.dc03event(account, params))

    @staticmethod
    def cid(account: str, code: str, qualifier: str = "1", zone: str = "001") -> tuple[str, str]:
        return "ADM-CID", str(dc05_msg.dc05event(account, {"code": code, "q": qualifier, "zone": zone}))

    def frame(self, token: str, content: str, seq: int, *, offset_s: float = 0, key: bytes | None = None) -> bytes:
        block = dc09_msg(self.account, key or self.key, self.receiver, self.line, offset_s)
        return str(block.dc09block(seq, token, content)).encode()

    def _exchange(self, raw: bytes, seq: int, attempts: int = 5) -> str | None:
        """Send, read the answer; with no answer, send the same frame again (``attempts`` in all). The package's UDP
        transport means to try five times a second apart but stops after the first timeout (it compares the exception
        with the class): on a loaded machine a commit can take longer than that second."""
        answer = None
        for _ in range(attempts):
            path = TransPath(self.host, self.port, self.account, type=self.transport, timeout=self.timeout_s)
            conn: Any = path.connect()
            try:
                answer = conn.sendAndReceive(raw, 1024) if conn is not None else None
            finally:
                TransPath.disconnect(conn)
            if answer:
                break
        if not answer:
            return None
        result = dc09_msg(self.account, self.key, self.receiver, self.line).dc09answer(seq, answer.decode())
        return str(result[0])

    async def send(
        self,
        token: str,
        content: str,
        *,
        seq: int | None = None,
        offset_s: float = 0,
        key: bytes | None = None,
    ) -> tuple[int, str | None]:
        """One message, one answer ('ACK', 'NAK', 'DUH'; None: no answer). Returns (sequence number, answer)."""
        n = self.next_seq() if seq is None else seq
        raw = self.frame(token, content, n, offset_s=offset_s, key=key)
        return n, await asyncio.to_thread(self._exchange, raw, n)

    async def send_raw(self, raw: bytes, seq: int) -> str | None:
        return await asyncio.to_thread(self._exchange, raw, seq)

    async def link_test(self) -> str | None:
        """A NULL message (sequence number 0000, as the package's poll thread sends it)."""
        return (await self.send("NULL", "]", seq=0))[1]

    async def send_until_acked(self, token: str, content: str, *, timeout_s: float = 60.0, retry_s: float = 0.3) -> int:
        """Repeat one message (same sequence number, a fresh frame and time stamp each time) until it is ACKed."""
        n = self.next_seq()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                _, answer = await self.send(token, content, seq=n)
            except Exception:  # the package raises on a garbled or cut answer: a retry, as for no answer
                answer = None
            if answer == "ACK":
                return n
            if time.monotonic() > deadline:
                raise TimeoutError(f"message {n} of {self.account} not acknowledged (last answer {answer})")
            await asyncio.sleep(retry_s)  # the transmitter's retry pause, not synchronisation
