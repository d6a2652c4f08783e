"""The SCAIP receiver as a gateway feature: SIP MESSAGE in over UDP and TCP, 200 OK at once, ``<mrs>`` after the
commit as a MESSAGE of its own to the unit (or, for a unit so configured, in the 200 OK).

Refusals, each logged with its code (never the message's text) and counted (``trygg_scaip_rejected_total``):
SIP that does not parse, or lacks a mandatory header: 400; a method other than MESSAGE (OPTIONS is answered 200,
as a keep-alive): 405; another content type: 415; over ``scaip_max_sip_bytes``: 413. An ``<mrq>`` that is
refused (snu 1, 2, 3, 7) is answered 200 and its ``<mrs>``, and kept as a dead letter. An identity the registry
does not know is answered snu 5 (NOT TREATED: the unit turns to its next receiver) and stored nowhere.

The ``<mrs>`` MESSAGE goes back over the transport the request came by: on TCP the same connection, on UDP to the
address it came from (retransmitted as RFC 3261 says, T1 doubling, until the unit answers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from typing import Any

import structlog
from sipmessage import Request, Response

from devices import DeviceTopic
from gateway.features import Subscription
from gateway.port import GatewayPort
from gateway.protocols.scaip import metrics, sip
from gateway.protocols.scaip.handler import LookupLimit, ScaipHandler
from gateway.protocols.scaip.mrq import CONTENT_TYPE, Mrs, Refusal, Snu, parse_mrq
from gateway.protocols.scaip.server import Peer, ScaipServer
from gateway.records import Letter, Received

log = structlog.get_logger(__name__)

T1_S = 0.5
T2_S = 4.0
MRS_SENDS = 7  # about 16 s of retransmissions over UDP before the unit is taken to have gone (it resends anyway)
TRANSACTIONS_KEPT = 4096
MAX_TASKS = 5000  # requests (and UDP retransmissions) in hand at once; beyond, a request is dropped and counted


class ScaipFeature:
    name = "scaip"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        s = port.settings
        self.handler = ScaipHandler(port)
        self.server = ScaipServer(
            s.scaip_host, s.scaip_port or 0, list(s.scaip_transports), s.scaip_max_sip_bytes, self._on_message
        )
        self._max_mrq = s.scaip_max_mrq_bytes
        self._receiver_uri = s.scaip_receiver_uri
        self._tasks: set[asyncio.Task[None]] = set()
        # (Call-ID, CSeq, Via branch) -> the final response sent, or None while it is being worked on
        self._transactions: OrderedDict[tuple[str, str, str], bytes | None] = OrderedDict()
        # (Call-ID, CSeq) of an <mrs> MESSAGE sent over UDP -> set when the unit answers it
        self._awaiting: dict[tuple[str, str], asyncio.Event] = {}

    # --- Feature protocol ------------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {}

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_connected(self) -> None:
        pass

    # --- SIP ------------------------------------------------------------------------------------------------
    def _on_message(self, data: bytes, peer: Peer) -> None:
        message = sip.parse_request(data, self.port.settings.scaip_max_sip_bytes)
        if isinstance(message, sip.SipError):
            self._refuse(peer, message.code, message.reason)
            if data.split(b" ", 1)[0] != b"SIP/2.0":  # never answer a response, however broken
                peer.send(sip.salvage_response(data, message.status))
            return
        if isinstance(message, Response):
            answered = self._awaiting.get((message.headers.get("Call-ID") or "", message.headers.get("CSeq") or ""))
            if answered is not None:
                answered.set()
            return
        if message.method == "OPTIONS":
            peer.send(sip.response(message, 200))
            return
        if message.method != "MESSAGE":
            self._refuse(peer, "method", f"method {message.method[:16]!r} is not MESSAGE")
            peer.send(sip.response(message, 405))
            return
        key = self._transaction(message)
        if key in self._transactions:  # a retransmission (UDP): answer it again, or let the work finish
            sent = self._transactions[key]
            if sent is not None:
                peer.send(sent)
            return
        if len(self._tasks) >= MAX_TASKS:  # a flood: the unit's retransmission or resend comes back later
            self._refuse(peer, "overload", f"{len(self._tasks)} requests in hand")
            return
        self._transactions[key] = None
        while len(self._transactions) > TRANSACTIONS_KEPT:
            self._transactions.popitem(last=False)
        self._spawn(self._request(message, peer, key))

    async def _request(self, request: Request, peer: Peer, key: tuple[str, str, str]) -> None:
        content_type = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type != CONTENT_TYPE:
            self._refuse(peer, "content_type", "content type is not application/scaip+xml")
            self._answer(peer, key, sip.response(request, 415))
            return
        mrq = parse_mrq(request.body, self._max_mrq)
        if isinstance(mrq, Refusal):
            self._refuse(peer, f"mrq_{mrq.snu.name.lower()}", mrq.reason)
            self._answer(peer, key, sip.response(request, 200))
            self._send_mrs(request, peer, Mrs(mrq.ref, mrq.snu, mrq.reason))
            code = f"scaip_{mrq.snu.name.lower()}"
            letter = Letter(Received(peer.label, request.body, "scaip"), code, mrq.reason, None, "mrq")
            await self.port.keep_dead_letter(letter)
            return
        try:
            unit = await self.handler.identify(mrq)
        except LookupLimit:
            self._refuse(peer, "lookup_limit", "too many unknown identities this second")
            self._answer(peer, key, sip.response(request, 200))
            self._send_mrs(request, peer, Mrs(mrq.ref, Snu.HOLD, "hold, resend later"))
            return
        except Exception as exc:  # the store cannot be read now: the unit holds its alarm and resends
            log.error("scaip registry look-up failed", error_type=type(exc).__name__)
            self._answer(peer, key, sip.response(request, 200))
            self._send_mrs(request, peer, Mrs(mrq.ref, Snu.HOLD, "hold, resend later"))
            return
        if unit is None:
            self._refuse(peer, "unknown_unit", f"no SCAIP unit with cid {mrq.cid} did {mrq.did}")
            self._answer(peer, key, sip.response(request, 200))
            self._send_mrs(request, peer, Mrs(mrq.ref, Snu.NOT_TREATED, "unknown unit"))
            return
        if not unit.mrs_in_200:
            self._answer(peer, key, sip.response(request, 200))
        try:
            mrs = await self.handler.handle(mrq, unit, Received(peer.label, request.body, "scaip"))
        except Exception as exc:
            log.error("scaip request could not be handled", device_id=unit.device_id, exc_info=exc)
            mrs = Mrs(mrq.ref, Snu.HOLD, "hold, resend later", mre=unit.mre, hbi=unit.hbi)
        if unit.mrs_in_200:
            metrics.ANSWERS.labels(str(int(mrs.snu))).inc()
            self._answer(peer, key, sip.response(request, 200, body=mrs.to_xml(), content_type=CONTENT_TYPE))
        else:
            self._send_mrs(request, peer, mrs, known=True)

    def _answer(self, peer: Peer, key: tuple[str, str, str], response: bytes) -> None:
        if key in self._transactions:
            self._transactions[key] = response
        peer.send(response)

    def _send_mrs(self, request: Request, peer: Peer, mrs: Mrs, *, known: bool = False) -> None:
        """The <mrs> as a MESSAGE of its own to the unit: its Contact, else its From. Over UDP it is retransmitted
        until answered only to a known unit: to anyone else it goes once (a forged source address must not make
        the receiver send seven MESSAGEs for one datagram)."""
        metrics.ANSWERS.labels(str(int(mrs.snu))).inc()
        try:
            contact = request.contact
        except ValueError:  # a Contact header that does not parse: From was checked when the request was read
            contact = []
        target = str(contact[0].uri) if contact else str(request.from_address.uri)
        data, cseq = sip.message_request(
            target,
            self._receiver_uri,
            to=request.headers.get("From") or f"<{target}>",
            call_id=request.call_id,
            transport=peer.transport,
            local=self.server.local(peer.transport),
            body=mrs.to_xml(),
            content_type=CONTENT_TYPE,
        )
        if peer.transport == "tcp" or not known:
            if not peer.send(data):
                metrics.MRS_UNDELIVERED.inc()
                log.warning("scaip answer not sent: connection closed", peer=peer.label, ref=mrs.ref)
            return
        answered = asyncio.Event()
        key = (request.call_id, cseq)
        self._awaiting[key] = answered
        self._spawn(self._retransmit(data, key, answered, peer, mrs.ref))

    async def _retransmit(
        self, data: bytes, key: tuple[str, str], answered: asyncio.Event, peer: Peer, ref: str | None
    ) -> None:
        interval = T1_S
        try:
            for _ in range(MRS_SENDS):
                peer.send(data)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), interval)
                    return
                interval = min(interval * 2, T2_S)
            metrics.MRS_UNDELIVERED.inc()
            log.warning("scaip answer never acknowledged by the unit", peer=peer.label, ref=ref)
        finally:
            self._awaiting.pop(key, None)

    # --- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _transaction(request: Request) -> tuple[str, str, str]:
        via = request.via
        branch = via[0].parameters.get("branch") if via else None
        return request.call_id, request.headers.get("CSeq") or "", str(branch or "")

    def _refuse(self, peer: Peer, code: str, reason: str) -> None:
        metrics.REJECTED.labels(code).inc()
        log.warning("scaip message refused", code=code, reason=reason, peer=peer.label)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            metrics.REJECTED.labels("handler_error").inc()
            log.error("scaip request failed", exc_info=task.exception())
