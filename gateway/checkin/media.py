"""The media side of a camera check-in: the gateway relays one camera's live video to one operator.

A look (docs/camera.md has the prose):

1. The operator's browser offers WebRTC to the gateway (receive-only video). ``start_look`` takes that offer.
2. The gateway offers WebRTC to the camera over MQTT (``camera/request``, receive-only video; audio only when
   the look allows it) and waits for ``camera/answer``.
3. The camera's video track is relayed to the operator through :class:`PrivacyTrack`, which applies the look's
   privacy mode to every frame (gateway/checkin/privacy.py). Frames live in memory only: nothing is written to
   disk, nothing is recorded.
4. The look ends at ``max_s`` on the gateway's own timer (reason ``cap``), when the operator or the consent side
   calls ``end_look``, when the camera sends ``camera/end`` (it caps the look on its own clock too), when a
   connection fails, or on shutdown. Listeners get one :class:`LookEnded` per look.

ICE: ``webrtc_ice_servers`` (STUN/TURN) and ``webrtc_host_addresses``. aioice has no address filter and never
gathers 127.0.0.1, so when ``webrtc_host_addresses`` is set, :func:`use_host_addresses` replaces
``aioice.ice.get_host_addresses`` (process-wide) with one returning exactly those addresses, each time a peer is
created here. With the setting empty, aioice's own lookup is put back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from aiortc import RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from devices import DeviceTopic
from devices.camera import CameraAnswer, CameraEnd, CameraRequest, CameraState, EndedBy
from devices.validation import Rejection, parse_model
from gateway.checkin.privacy import PrivacyMode, PrivacyState, apply_privacy
from gateway.features import Subscription
from gateway.port import GatewayPort
from gateway.webrtc.peers import Peers
from trygg.webrtc import new_peer_connection, rtc_configuration, use_host_addresses

log = structlog.get_logger(__name__)

# After the camera's video stops, wait this long for its camera/end (which carries the reason) before ending.
TRACK_END_GRACE_S = 0.3


class LookError(Exception):
    """A look could not start; ``reason`` says why in words an operator understands."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EndReason(StrEnum):
    CAP = "cap"  # the gateway's timer reached max_s
    OPERATOR = "operator"  # the operator closed the look (end_look's usual reason)
    CAMERA_ENDED = "camera_ended"  # the camera sent camera/end (LookEnded.detail has its reason) or its video stopped
    FAILED = "failed"  # it never started, or a connection failed
    WITHDRAWN = "withdrawn"  # consent withdrawn (given to end_look by the consent side)
    SHUTDOWN = "shutdown"  # the gateway stopped
    PAGE_LEFT = "page_left"  # the operator's page was left (reload, closed tab) and said so
    VIEWER_LEFT = "viewer_left"  # the operator's connection closed without a word (the browser closed it)
    TAKEN_OVER = "taken_over"  # the same operator started a new look through this camera (a reloaded page)


@dataclass(frozen=True, slots=True)
class LookEnded:
    look_id: str
    camera_id: str
    reason: str
    started_at: datetime
    ended_at: datetime
    duration_s: float
    frames_relayed: int
    detail: str | None = None  # e.g. the camera's own reason, or why it failed


# --------------------------------------------------------------------------------------------------- the relay


class PrivacyTrack(VideoStreamTrack):
    """The camera's video as the operator may see it: every frame through the look's privacy filter."""

    kind = "video"

    def __init__(self, source: Any, mode: PrivacyMode, on_source_end: Callable[[], None]) -> None:
        super().__init__()
        self._source = source
        self._mode = PrivacyMode(mode)
        self._state = PrivacyState()
        self._on_source_end = on_source_end
        self.frames = 0

    async def recv(self) -> Any:
        try:
            frame = await self._source.recv()
        except MediaStreamError:
            self._on_source_end()
            self.stop()
            raise
        self.frames += 1
        if self._mode is PrivacyMode.FULL:
            return frame
        image = apply_privacy(frame.to_ndarray(format="bgr24"), self._mode, self._state)
        out = VideoFrame.from_ndarray(image, format="bgr24")
        out.pts = frame.pts
        out.time_base = frame.time_base
        return out


@dataclass(eq=False)
class _Look:
    look_id: str
    camera_id: str
    privacy: PrivacyMode
    max_s: float
    audio: bool
    started_at: datetime
    t0: float
    answer: asyncio.Future[CameraAnswer]
    pcs: list[Any] = field(default_factory=list)
    track: PrivacyTrack | None = None
    requested: bool = False
    ended: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    cap_task: asyncio.Task[None] | None = None


class CameraRelayFeature:
    """The gateway part that runs looks: MQTT signaling toward cameras, WebRTC relay toward operators."""

    name = "camera"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        self._running = False
        self._looks: dict[str, _Look] = {}
        self._peers = Peers(port.settings)
        self._states: dict[str, str] = {}
        self._state_changed = asyncio.Condition()
        self._listeners: list[Callable[[LookEnded], None]] = []

    # ------------------------------------------------------------------ Feature protocol

    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {
            DeviceTopic.CAMERA_ANSWER: Subscription(self._on_answer),
            DeviceTopic.CAMERA_END: Subscription(self._on_end),
            DeviceTopic.CAMERA_STATE: Subscription(self._on_state),
        }

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        """Ends every look (reason ``shutdown``) and closes every peer connection."""
        for look in list(self._looks.values()):
            await self._finish(look, EndReason.SHUTDOWN)
        await self._peers.close_all()
        self._running = False

    def on_connected(self) -> None:
        """Nothing retained to re-publish: camera/state is the camera's."""

    # ------------------------------------------------------------------ public API

    def add_listener(self, callback: Callable[[LookEnded], None]) -> None:
        """``callback(LookEnded)`` once per look when it ends, whatever the reason. It must not raise or block."""
        self._listeners.append(callback)

    def camera_state(self, camera_id: str) -> str | None:
        """The last ``camera/state`` seen from this camera (``idle`` / ``live``), None if never seen."""
        return self._states.get(camera_id)

    async def wait_camera_state(self, camera_id: str, state: str, timeout_s: float) -> None:
        """Return once the camera reports ``state``; ``TimeoutError`` after ``timeout_s``."""
        async with asyncio.timeout(timeout_s), self._state_changed:
            await self._state_changed.wait_for(lambda: self._states.get(camera_id) == state)

    def active_looks(self) -> list[str]:
        return [look_id for look_id, look in self._looks.items() if not look.ended]

    async def start_look(
        self,
        *,
        look_id: str,
        camera_id: str,
        offer_sdp: str,
        offer_type: str,
        privacy: PrivacyMode,
        max_s: float,
        audio: bool = False,
        answer_timeout_s: float = 10.0,
    ) -> dict[str, str]:
        """Start a look from the operator's offer; returns the operator's answer ``{"sdp", "type"}``.

        Raises :class:`LookError` when the look cannot start (camera offline, no answer in time, refused, bad
        offer, ...); the camera is then told ``camera/end`` and listeners get a ``failed`` LookEnded.
        """
        if not self._running:
            raise LookError("the camera relay is not running")
        if look_id in self._looks:
            raise LookError(f"look {look_id} is already running")
        if any(look.camera_id == camera_id for look in self._looks.values()):
            raise LookError(f"camera {camera_id} is busy with another look")
        if max_s <= 0:
            raise LookError("max_s must be positive")
        if offer_type != "offer":
            raise LookError(f"expected the operator's offer, got type {offer_type!r}")
        if not self.port.connected:
            raise LookError("the gateway is not connected to the broker")
        loop = asyncio.get_running_loop()
        look = _Look(
            look_id=look_id,
            camera_id=camera_id,
            privacy=PrivacyMode(privacy),
            max_s=max_s,
            audio=audio,
            started_at=datetime.now(UTC),
            t0=loop.time(),
            answer=loop.create_future(),
        )
        self._looks[look_id] = look
        look.cap_task = self._peers.spawn(self._cap(look))
        log.info("look starting", look_id=look_id, camera_id=camera_id, privacy=look.privacy.value, max_s=max_s)
        try:
            return await self._negotiate(look, offer_sdp, answer_timeout_s)
        except BaseException as exc:
            reason = exc.reason if isinstance(exc, LookError) else f"{type(exc).__name__}: {exc}"
            if look.ended:  # ended by the cap (or shutdown) while starting
                reason = f"the look ended while starting ({reason})"
            await self._finish(look, EndReason.FAILED, detail=reason)
            log.warning("look failed to start", look_id=look_id, camera_id=camera_id, reason=reason)
            if isinstance(exc, LookError | asyncio.CancelledError):
                raise
            raise LookError(reason) from exc

    async def end_look(self, look_id: str, reason: str) -> None:
        """End a look now: tell the camera, close both connections. Unknown or ended looks: nothing to do."""
        look = self._looks.get(look_id)
        if look is not None:
            await self._finish(look, reason)

    # ------------------------------------------------------------------ negotiation

    async def _negotiate(self, look: _Look, offer_sdp: str, timeout_s: float) -> dict[str, str]:
        operator = self._new_pc(look, "operator")
        await operator.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        op_kinds = {t.kind for t in operator.getTransceivers()}
        if "video" not in op_kinds:
            raise LookError("the operator's offer has no video")

        camera = self._new_pc(look, "camera")
        camera.addTransceiver("video", direction="recvonly")
        if look.audio:
            camera.addTransceiver("audio", direction="recvonly")
        await camera.setLocalDescription(await camera.createOffer())
        self._check_live(look)
        request = CameraRequest(
            look_id=look.look_id, sdp=camera.localDescription.sdp, max_s=look.max_s, audio=look.audio
        )
        topic = self.port.topics.device(look.camera_id, DeviceTopic.CAMERA_REQUEST)
        if not self.port.publish(topic, request.model_dump_json().encode(), qos=1):
            raise LookError("could not send the request to the camera (broker connection)")
        look.requested = True
        try:
            async with asyncio.timeout(timeout_s):
                answer = await look.answer
        except TimeoutError:
            raise LookError(f"camera {look.camera_id} did not answer within {timeout_s:g} s (offline?)") from None
        if answer.error is not None:
            raise LookError(f"camera {look.camera_id} refused the look: {answer.error}")
        assert answer.sdp is not None  # CameraAnswer: sdp or error
        await camera.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        self._check_live(look)

        sources = {t.kind: t.receiver.track for t in camera.getTransceivers() if t.receiver.track is not None}
        if "video" not in sources:
            raise LookError("the camera's answer has no video")
        look.track = PrivacyTrack(sources["video"], look.privacy, lambda: self._on_source_end(look))
        operator.addTrack(look.track)
        if look.audio and "audio" in sources and "audio" in op_kinds:
            operator.addTrack(sources["audio"])
        await operator.setLocalDescription(await operator.createAnswer())
        self._check_live(look)
        log.info("look live", look_id=look.look_id, camera_id=look.camera_id)
        return {"sdp": operator.localDescription.sdp, "type": operator.localDescription.type}

    @staticmethod
    def _check_live(look: _Look) -> None:
        if look.ended:
            raise LookError("the look ended while starting")

    def _new_pc(self, look: _Look, side: str) -> Any:
        async def on_state(state: str) -> None:
            log.debug("peer connection state", look_id=look.look_id, side=side, state=state)
            if state == "failed":
                await self._finish(look, EndReason.FAILED, detail=f"the {side} connection failed")
            elif state == "closed" and side == "operator" and not look.ended:
                # The browser closed its side (a reload or a closed tab ends its peer connection): nobody is
                # watching any more, so the look ends now, not at its cap.
                await self._finish(look, EndReason.VIEWER_LEFT, detail="the operator's connection closed")

        pc = self._peers.new(on_state)
        look.pcs.append(pc)
        return pc

    # ------------------------------------------------------------------ ending

    async def _cap(self, look: _Look) -> None:
        await asyncio.sleep(max(0.0, look.t0 + look.max_s - asyncio.get_running_loop().time()))
        await self._finish(look, EndReason.CAP)

    def _on_source_end(self, look: _Look) -> None:
        """The camera's video stopped: end the look unless its camera/end (with the reason) comes first."""

        async def later() -> None:
            await asyncio.sleep(TRACK_END_GRACE_S)
            await self._finish(look, EndReason.CAMERA_ENDED, detail="the camera's video stopped")

        if not look.ended:
            self._peers.spawn(later())

    async def _finish(self, look: _Look, reason: str, *, detail: str | None = None, tell_camera: bool = True) -> None:
        """End ``look`` once: tell the camera, close both peers, call the listeners. Later calls wait for it."""
        if look.ended:
            await look.closed.wait()
            return
        look.ended = True
        loop = asyncio.get_running_loop()
        t_end = loop.time()
        if tell_camera and look.requested and self.port.connected:
            end = CameraEnd(look_id=look.look_id, reason=reason, by=EndedBy.GATEWAY)
            self.port.publish(
                self.port.topics.device(look.camera_id, DeviceTopic.CAMERA_END), end.model_dump_json().encode(), qos=1
            )
        if not look.answer.done():
            look.answer.set_exception(LookError(f"the look ended ({reason})"))
            look.answer.exception()  # retrieved: no "never retrieved" warning when nobody awaits it
        if look.cap_task is not None and look.cap_task is not asyncio.current_task():
            look.cap_task.cancel()
        try:
            await self._peers.close(look.pcs)
        finally:
            self._looks.pop(look.look_id, None)
            ended = LookEnded(
                look_id=look.look_id,
                camera_id=look.camera_id,
                reason=str(reason),
                started_at=look.started_at,
                ended_at=datetime.now(UTC),
                duration_s=round(t_end - look.t0, 3),
                frames_relayed=look.track.frames if look.track is not None else 0,
                detail=detail,
            )
            log.info(
                "look ended",
                look_id=look.look_id,
                camera_id=look.camera_id,
                reason=ended.reason,
                detail=detail,
                duration_s=ended.duration_s,
                frames=ended.frames_relayed,
                close_ms=round((loop.time() - t_end) * 1000, 1),
            )
            for callback in self._listeners:
                try:
                    callback(ended)
                except Exception as exc:
                    log.exception("look listener failed", look_id=look.look_id, error=str(exc))
            look.closed.set()

    # ------------------------------------------------------------------ MQTT handlers

    async def _on_answer(self, device_id: str, payload: bytes) -> None:
        answer = parse_model(CameraAnswer, payload)
        if isinstance(answer, Rejection):
            log.warning("camera answer rejected", camera_id=device_id, error=answer.reason)
            return
        look = self._looks.get(answer.look_id)
        if look is None or look.camera_id != device_id:
            log.info("camera answer for no running look", camera_id=device_id, look_id=answer.look_id)
            return
        if not look.answer.done():
            look.answer.set_result(answer)

    async def _on_end(self, device_id: str, payload: bytes) -> None:
        end = parse_model(CameraEnd, payload)
        if isinstance(end, Rejection):
            log.warning("camera end rejected", camera_id=device_id, error=end.reason)
            return
        if end.by is EndedBy.GATEWAY:
            return  # our own message, back from the broker
        look = self._looks.get(end.look_id)
        if look is None or look.camera_id != device_id:
            return
        if not look.answer.done():  # refused before it answered
            look.answer.set_result(CameraAnswer(look_id=end.look_id, error=end.reason))
            return
        await self._finish(look, EndReason.CAMERA_ENDED, detail=end.reason, tell_camera=False)

    async def _on_state(self, device_id: str, payload: bytes) -> None:
        state = parse_model(CameraState, payload)
        if isinstance(state, Rejection):
            log.warning("camera state rejected", camera_id=device_id, error=state.reason)
            return
        async with self._state_changed:
            self._states[device_id] = state.state.value
            self._state_changed.notify_all()


__all__ = [
    "CameraRelayFeature",
    "EndReason",
    "LookEnded",
    "LookError",
    "PrivacyMode",
    "PrivacyTrack",
    "new_peer_connection",
    "rtc_configuration",
    "use_host_addresses",
]
