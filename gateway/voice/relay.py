"""The media and signalling side of a voice call: the gateway relays two-way audio between a base unit (MQTT
signalling, WebRTC Opus) and one operator's browser (WebRTC Opus), so that a unit never reaches a browser.

A call (docs/voice.md has the prose):

1. The unit calls: ``voice/call`` for its alarm. The call *rings* (listeners get ``ringing``) until an operator
   answers, the unit gives up (``voice/end``) or ``max_ring_s`` passes (``not_answered``).
2. An operator answers (:meth:`VoiceRelayFeature.connect` with the ringing call's id) or calls back (``connect``
   without one): the browser's offer (audio, both ways) makes the operator-facing peer; the gateway offers the
   unit a second peer over MQTT (``voice/request``) carrying the operator's audio, waits for ``voice/answer``, and
   relays the unit's audio back on the operator's peer. Listeners get ``answered``.
3. The call ends when either side hangs up, the operator's connection closes, a connection fails (``failed``,
   ICE), at ``voice_max_call_s``, or on shutdown: both peers are closed, the unit is told ``voice/end``, and
   listeners get ``ended`` (or ``failed`` for a call that never got through) with who, why and how long.

Audio frames live in memory only, in the WebRTC stacks, for the length of one frame: nothing is recorded. Every
peer connection is tracked and closed when its call ends, on "failed" and on ``stop()`` (aiortc's server example).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from aiortc import MediaStreamTrack, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from devices import DeviceStatus, DeviceTopic
from devices.validation import Rejection, parse_model
from devices.voice import EndedBy, VoiceAnswer, VoiceCall, VoiceEnd, VoiceRequest, VoiceState
from gateway import metrics
from gateway.features import Subscription
from gateway.port import GatewayPort
from gateway.webrtc.peers import Peers

# Seconds a live call waits for the unit's voice/end after the unit's peer connection closed (a hang-up sends
# both, in either order) before it ends as broken.
UNIT_CLOSED_GRACE_S = 2.0
log = structlog.get_logger(__name__)

CallPhase = Literal["ringing", "connecting", "live", "ended"]
EventKind = Literal["ringing", "answered", "ended", "failed"]


class CallFailed(Exception):
    """A call could not be put through; ``code`` (``voice.*``) says why, for the console to say plainly."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class CallEvent:
    """What listeners get: a call rang, was answered, ended (after an answer) or failed (never got through)."""

    kind: EventKind
    call_id: str
    unit_id: str
    alarm_device_id: str
    alarm_id: str
    callback: bool
    operator: str | None
    reason: str | None = None
    duration_s: float | None = None  # talk time, from the answer (ended only)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_id: str
    unit_id: str
    alarm_device_id: str
    alarm_id: str
    phase: CallPhase
    callback: bool
    operator: str | None
    rang_at: datetime
    answered_at: datetime | None


class CountingTrack(MediaStreamTrack):
    """One direction of the call, relayed frame by frame (counted; nothing kept)."""

    kind = "audio"

    def __init__(self, source: Any) -> None:
        super().__init__()
        self._source = source
        self.frames = 0

    async def recv(self) -> Any:
        try:
            frame = await self._source.recv()
        except MediaStreamError:
            self.stop()
            raise
        self.frames += 1
        return frame


@dataclass(eq=False)
class _Call:
    call_id: str
    unit_id: str
    alarm_device_id: str
    alarm_id: str
    callback: bool
    rang_at: datetime
    answer: asyncio.Future[VoiceAnswer]
    phase: CallPhase = "ringing"
    operator: str | None = None
    answered_at: datetime | None = None
    t_answer: float | None = None
    requested: bool = False
    pcs: list[Any] = field(default_factory=list)
    tracks: list[CountingTrack] = field(default_factory=list)
    timer: asyncio.Task[None] | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self) -> CallInfo:
        return CallInfo(
            self.call_id,
            self.unit_id,
            self.alarm_device_id,
            self.alarm_id,
            self.phase,
            self.callback,
            self.operator,
            self.rang_at,
            self.answered_at,
        )

    def event(self, kind: EventKind, reason: str | None = None, duration_s: float | None = None) -> CallEvent:
        return CallEvent(
            kind,
            self.call_id,
            self.unit_id,
            self.alarm_device_id,
            self.alarm_id,
            self.callback,
            self.operator,
            reason,
            duration_s,
        )


def _ended(call: _Call) -> bool:
    return call.phase == "ended"


class VoiceRelayFeature:
    """Voice signalling toward units (MQTT) and the audio relay toward operators (WebRTC)."""

    name = "voice"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        self._running = False
        self._calls: dict[str, _Call] = {}
        self._units: dict[str, VoiceState] = {}
        self._offline: set[str] = set()
        self._peers = Peers(port.settings)
        self._listeners: list[Callable[[CallEvent], None]] = []
        self._ring_check: Callable[[str, VoiceCall], Coroutine[Any, Any, str | None]] | None = None
        port.on_status(self._on_status)

    # ------------------------------------------------------------------ Feature protocol

    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {
            DeviceTopic.VOICE_STATE: Subscription(self._on_state),
            DeviceTopic.VOICE_CALL: Subscription(self._on_call),
            DeviceTopic.VOICE_ANSWER: Subscription(self._on_answer),
            DeviceTopic.VOICE_END: Subscription(self._on_end),
        }

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        """Ends every call (reason ``shutdown``) and closes every peer connection."""
        for call in list(self._calls.values()):
            await self._finish(call, "shutdown")
        await self._peers.close_all()
        self._running = False

    def on_connected(self) -> None:
        """Nothing retained to re-publish: voice/state is the unit's."""

    # ------------------------------------------------------------------ public API

    def add_listener(self, callback: Callable[[CallEvent], None]) -> None:
        """``callback(CallEvent)`` on ringing, answered, ended and failed. It must not raise or block."""
        self._listeners.append(callback)

    def check_rings_with(self, check: Callable[[str, VoiceCall], Coroutine[Any, Any, str | None]]) -> None:
        """``check(unit_id, call)`` -> None to let a unit's call ring, or the reason to refuse it."""
        self._ring_check = check

    def unit_state(self, unit_id: str) -> VoiceState | None:
        return self._units.get(unit_id)

    def is_offline(self, unit_id: str) -> bool:
        """The unit's last status was ``offline`` (its will, or its own word)."""
        return unit_id in self._offline

    def voice_units(self) -> list[str]:
        return [unit for unit, state in self._units.items() if state.can_talk()]

    def calls(self) -> list[CallInfo]:
        return [call.info() for call in self._calls.values() if call.phase != "ended"]

    def call(self, call_id: str) -> CallInfo | None:
        call = self._calls.get(call_id)
        return call.info() if call is not None and call.phase != "ended" else None

    def relayed_frames(self, call_id: str) -> tuple[int, int]:
        """(unit -> operator, operator -> unit) audio frames relayed so far."""
        call = self._calls.get(call_id)
        if call is None or len(call.tracks) < 2:
            return (0, 0)
        return (call.tracks[1].frames, call.tracks[0].frames)

    async def connect(
        self,
        *,
        operator: str,
        offer_sdp: str,
        offer_type: str,
        call_id: str | None = None,
        unit_id: str | None = None,
        alarm_device_id: str | None = None,
        alarm_id: str | None = None,
        answer_timeout_s: float = 10.0,
        max_s: float = 1800.0,
    ) -> dict[str, str]:
        """Put an operator through: answer the ringing ``call_id``, or (without it) call ``unit_id`` back for the
        alarm. Returns the operator's SDP answer with ``call_id``; raises :class:`CallFailed` when the call
        cannot be put through (the unit is told ``voice/end`` and listeners get ``failed``)."""
        if not self._running:
            raise CallFailed("voice.not_running", "the voice relay is not running")
        if offer_type != "offer":
            raise CallFailed("voice.bad_offer", f"expected the operator's offer, got type {offer_type!r}")
        loop = asyncio.get_running_loop()
        if call_id is not None:
            call = self._calls.get(call_id)
            if call is None or call.phase == "ended":
                raise CallFailed("voice.call_not_found", "no such call (it may have ended)")
            if call.phase != "ringing":
                raise CallFailed("voice.call_taken", "this call has already been answered")
        else:
            assert unit_id is not None and alarm_device_id is not None and alarm_id is not None
            if any(c.unit_id == unit_id and c.phase in ("connecting", "live") for c in self._calls.values()):
                raise CallFailed("voice.unit_busy", "the unit is already in a call")
            call = _Call(
                call_id=uuid.uuid4().hex,
                unit_id=unit_id,
                alarm_device_id=alarm_device_id,
                alarm_id=alarm_id,
                callback=True,
                rang_at=datetime.now(UTC),
                answer=loop.create_future(),
            )
            self._calls[call.call_id] = call
        if call.timer is not None:
            call.timer.cancel()
        call.phase = "connecting"
        call.operator = operator
        log.info("call connecting", call_id=call.call_id, unit_id=call.unit_id, callback=call.callback)
        try:
            if not self.port.connected:
                raise CallFailed("voice.gateway_offline", "the gateway is not connected to the broker")
            if call.unit_id in self._offline:
                raise CallFailed("voice.unit_offline", f"unit {call.unit_id} is offline")
            answer = await self._negotiate(call, offer_sdp, answer_timeout_s, max_s)
        except BaseException as exc:
            failure = exc if isinstance(exc, CallFailed) else CallFailed("voice.failed", f"{type(exc).__name__}")
            if _ended(call):
                failure = CallFailed("voice.ended_while_connecting", "the call ended while connecting")
            await self._finish(call, failure.code.removeprefix("voice."), detail=failure.detail)
            log.warning("call failed", call_id=call.call_id, unit_id=call.unit_id, code=failure.code)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise failure from exc
        call.phase = "live"
        call.answered_at = datetime.now(UTC)
        call.t_answer = loop.time()
        call.timer = self._peers.spawn(self._cap(call, max_s))
        self._emit(call.event("answered"))
        log.info("call live", call_id=call.call_id, unit_id=call.unit_id)
        return {**answer, "call_id": call.call_id}

    async def hang_up(self, call_id: str, reason: str = "operator") -> None:
        """End a call now: tell the unit, close both peers. Unknown or ended calls: nothing to do."""
        call = self._calls.get(call_id)
        if call is not None:
            await self._finish(call, reason)

    # ------------------------------------------------------------------ negotiation

    async def _negotiate(self, call: _Call, offer_sdp: str, timeout_s: float, max_s: float) -> dict[str, str]:
        operator = self._new_pc(call, "operator")
        await operator.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        op_audio = next((t for t in operator.getTransceivers() if t.kind == "audio"), None)
        if op_audio is None or op_audio.receiver.track is None:
            raise CallFailed("voice.bad_offer", "the operator's offer has no audio")
        to_unit = CountingTrack(op_audio.receiver.track)
        call.tracks.append(to_unit)

        unit = self._new_pc(call, "unit")
        unit.addTrack(to_unit)
        await unit.setLocalDescription(await unit.createOffer())
        self._check_live(call)
        request = VoiceRequest(
            call_id=call.call_id,
            sdp=unit.localDescription.sdp,
            callback=call.callback,
            alarm_id=call.alarm_id,
            max_s=max_s,
        )
        topic = self.port.topics.device(call.unit_id, DeviceTopic.VOICE_REQUEST)
        if not self.port.publish(topic, request.model_dump_json().encode(), qos=1):
            raise CallFailed("voice.gateway_offline", "could not send the request to the unit (broker connection)")
        call.requested = True
        try:
            async with asyncio.timeout(timeout_s):
                answer = await call.answer
        except TimeoutError:
            raise CallFailed("voice.unit_no_answer", f"unit {call.unit_id} did not answer in {timeout_s:g} s") from None
        if answer.error is not None:
            raise CallFailed("voice.unit_refused", f"unit {call.unit_id} refused the call: {answer.error}")
        assert answer.sdp is not None
        await unit.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        self._check_live(call)
        source = next((t.receiver.track for t in unit.getTransceivers() if t.kind == "audio"), None)
        if source is None:
            raise CallFailed("voice.bad_answer", "the unit's answer has no audio")
        to_operator = CountingTrack(source)
        call.tracks.append(to_operator)
        operator.addTrack(to_operator)
        await operator.setLocalDescription(await operator.createAnswer())
        self._check_live(call)
        return {"sdp": operator.localDescription.sdp, "type": operator.localDescription.type}

    @staticmethod
    def _check_live(call: _Call) -> None:
        if call.phase == "ended":
            raise CallFailed("voice.ended_while_connecting", "the call ended while connecting")

    def _new_pc(self, call: _Call, side: str) -> Any:
        async def on_state(state: str) -> None:
            log.debug("peer connection state", call_id=call.call_id, side=side, state=state)
            if state == "failed":
                await self._finish(call, "ice_failed", detail=f"the {side} connection failed")
            elif state == "closed" and side == "operator" and call.phase == "live":
                await self._finish(call, "operator_left")
            elif state == "closed" and side == "unit" and call.phase == "live":
                # The unit's side closed. A unit that hangs up also sends voice/end, which may come just after: wait
                # for it a moment; without it the unit went away (died, lost its network), the call is over and the
                # operator is told as for a broken connection (the alarm stays in the queue).
                try:
                    await asyncio.wait_for(asyncio.shield(call.closed.wait()), UNIT_CLOSED_GRACE_S)
                except TimeoutError:
                    await self._finish(call, "ice_failed", detail="the unit's connection closed")

        pc = self._peers.new(on_state)
        call.pcs.append(pc)
        return pc

    # ------------------------------------------------------------------ ending

    async def _ring_timeout(self, call: _Call, max_ring_s: float) -> None:
        await asyncio.sleep(max_ring_s)
        await self._finish(call, "not_answered")

    async def _cap(self, call: _Call, max_s: float) -> None:
        await asyncio.sleep(max_s)
        await self._finish(call, "cap")

    async def _finish(self, call: _Call, reason: str, *, detail: str | None = None, tell_unit: bool = True) -> None:
        """End ``call`` once: tell the unit, close both peers, call the listeners. Later calls wait for it."""
        if call.phase == "ended":
            await call.closed.wait()
            return
        was = call.phase
        call.phase = "ended"
        loop = asyncio.get_running_loop()
        if tell_unit and (call.requested or not call.callback) and self.port.connected:
            end = VoiceEnd(call_id=call.call_id, reason=reason, by=EndedBy.GATEWAY)
            self.port.publish(
                self.port.topics.device(call.unit_id, DeviceTopic.VOICE_END), end.model_dump_json().encode(), qos=1
            )
        if not call.answer.done():
            call.answer.set_exception(CallFailed("voice.ended", f"the call ended ({reason})"))
            call.answer.exception()
        if call.timer is not None and call.timer is not asyncio.current_task():
            call.timer.cancel()
        try:
            await self._peers.close(call.pcs)
        finally:
            self._calls.pop(call.call_id, None)
            if was == "live" and call.t_answer is not None:
                event = call.event("ended", reason, round(loop.time() - call.t_answer, 3))
            elif was == "ringing" and reason in ("unit_ended", "shutdown"):
                event = call.event("ended", reason, 0.0)
            else:
                event = call.event("failed", reason)
            log.info(
                "call ended",
                call_id=call.call_id,
                unit_id=call.unit_id,
                kind=event.kind,
                reason=reason,
                detail=detail,
                duration_s=event.duration_s,
                frames=[t.frames for t in call.tracks],
            )
            metrics.VOICE_CALLS.labels(event.kind, reason).inc()
            self._emit(event)
            call.closed.set()

    def _emit(self, event: CallEvent) -> None:
        for callback in self._listeners:
            try:
                callback(event)
            except Exception as exc:
                log.exception("call listener failed", call_id=event.call_id, error=str(exc))

    # ------------------------------------------------------------------ MQTT handlers

    async def _on_status(self, device_id: str, status: DeviceStatus) -> None:
        if status is DeviceStatus.OFFLINE:
            self._offline.add(device_id)
            for call in [c for c in self._calls.values() if c.unit_id == device_id and c.phase == "ringing"]:
                await self._finish(call, "unit_offline", tell_unit=False)
        else:
            self._offline.discard(device_id)

    async def _on_state(self, device_id: str, payload: bytes) -> None:
        state = parse_model(VoiceState, payload)
        if isinstance(state, Rejection):
            log.warning("voice state rejected", unit_id=device_id, error=state.reason)
            metrics.VOICE_REJECTED.labels("state", state.code).inc()
            return
        self._units[device_id] = state

    def _refuse_ring(self, unit_id: str, call_id: str, reason: str) -> None:
        log.warning("unit's call refused", unit_id=unit_id, call_id=call_id, reason=reason)
        metrics.VOICE_REJECTED.labels("call", reason).inc()
        end = VoiceEnd(call_id=call_id, reason=reason, by=EndedBy.GATEWAY)
        self.port.publish(self.port.topics.device(unit_id, DeviceTopic.VOICE_END), end.model_dump_json().encode())

    async def _on_call(self, device_id: str, payload: bytes) -> None:
        ring = parse_model(VoiceCall, payload)
        if isinstance(ring, Rejection):
            log.warning("unit's call rejected", unit_id=device_id, error=ring.reason)
            metrics.VOICE_REJECTED.labels("call", ring.code).inc()
            return
        if ring.call_id in self._calls:
            return  # a resend of a call already ringing
        state = self._units.get(device_id)
        if state is None or not state.can_talk():
            self._refuse_ring(device_id, ring.call_id, "no_voice_capability")
            return
        if self._ring_check is not None and (why := await self._ring_check(device_id, ring)) is not None:
            self._refuse_ring(device_id, ring.call_id, why)
            return
        loop = asyncio.get_running_loop()
        call = _Call(
            call_id=ring.call_id,
            unit_id=device_id,
            alarm_device_id=ring.alarm_device_id or device_id,
            alarm_id=ring.alarm_id,
            callback=False,
            rang_at=datetime.now(UTC),
            answer=loop.create_future(),
        )
        self._calls[call.call_id] = call
        call.timer = self._peers.spawn(self._ring_timeout(call, ring.max_ring_s))
        log.info("unit calls", unit_id=device_id, call_id=call.call_id, alarm_id=ring.alarm_id)
        self._emit(call.event("ringing"))

    async def _on_answer(self, device_id: str, payload: bytes) -> None:
        answer = parse_model(VoiceAnswer, payload)
        if isinstance(answer, Rejection):
            log.warning("voice answer rejected", unit_id=device_id, error=answer.reason)
            metrics.VOICE_REJECTED.labels("answer", answer.code).inc()
            return
        call = self._calls.get(answer.call_id)
        if call is None or call.unit_id != device_id:
            log.info("voice answer for no call", unit_id=device_id, call_id=answer.call_id)
            return
        if not call.answer.done():
            call.answer.set_result(answer)

    async def _on_end(self, device_id: str, payload: bytes) -> None:
        end = parse_model(VoiceEnd, payload)
        if isinstance(end, Rejection):
            log.warning("voice end rejected", unit_id=device_id, error=end.reason)
            metrics.VOICE_REJECTED.labels("end", end.code).inc()
            return
        if end.by is EndedBy.GATEWAY:
            return  # our own message, back from the broker
        call = self._calls.get(end.call_id)
        if call is None or call.unit_id != device_id:
            return
        if call.phase == "connecting" and not call.answer.done():
            call.answer.set_result(VoiceAnswer(call_id=end.call_id, error=end.reason))
            return
        await self._finish(call, "unit_ended", detail=end.reason, tell_unit=False)
