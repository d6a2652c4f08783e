"""A simulated check-in camera: a real MQTT client and a real WebRTC peer sending a synthetic bedroom.

- connects (clean session: a request sent while the camera was away is stale and must not be replayed), with a
  retained ``offline`` will on ``status``; publishes retained ``online`` and its ``camera/state`` on every
  connect; subscribes to its ``camera/request`` and ``camera/end``; sends heartbeats like firmware_sim/device.py;
- idle, it has no peer connection and sends no video ("points at the ceiling");
- on ``camera/request`` it answers the gateway's offer (``camera/answer``) with a peer that sends the scene of
  firmware_sim/scene.py as a video track (no microphone: never audio), and publishes ``camera/state`` live;
- it ends the look on its own clock at ``min(request.max_s, max_look_s)`` (plus ``cap_lag_s``, 0 by default)
  whatever the gateway does (``camera/end`` with reason ``cap``, by ``camera``), and when the gateway sends
  ``camera/end``;
- it ends the look when its peer connection fails, or is closed by the other side without a ``camera/end``
  within ``CLOSED_GRACE_S`` (a gateway that died: aiortc reports ``closed`` once ICE consent expires);
- one look at a time: a second request is answered with ``error: busy``.

``scenario`` can be changed at any time (``in_bed``, ``absent``, ``on_floor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import structlog
from aiortc import RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame
from pydantic import ValidationError

from devices import DeviceStatus, DeviceTopic, Heartbeat, Topics
from devices.camera import CameraAnswer, CameraEnd, CameraLiveState, CameraRequest, CameraState, EndedBy
from devices.messages import utcnow
from firmware_sim.credentials import device_endpoint
from firmware_sim.scene import Scenario, Scene
from trygg.mqtt import Will, connect, is_connected, make_client
from trygg.settings import Settings
from trygg.webrtc import new_peer_connection

log = structlog.get_logger(__name__)

FIRMWARE = "trygg-sim-camera/0.1"
CONNECT_TIMEOUT_S = 5.0
RECONNECT_MAX_S = 10.0
START_WAIT_S = 10.0
CLOSED_GRACE_S = 2.0  # a peer closed by the other side: how long to wait for camera/end before ending the look
VIDEO_CLOCK_RATE = 90000


class SceneTrack(VideoStreamTrack):
    """The scene as live video at ``fps``; scene time starts at 0 when the look starts."""

    kind = "video"

    def __init__(self, camera: SimCamera, fps: float) -> None:
        super().__init__()
        self._camera = camera
        self._fps = fps
        self._t0: float | None = None
        self._count = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            self._count += 1
            wait = self._t0 + self._count / self._fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        t = self._count / self._fps
        frame = VideoFrame.from_ndarray(self._camera.scene.render(self._camera.scenario, t), format="bgr24")
        frame.pts = round(t * VIDEO_CLOCK_RATE)
        frame.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        self._camera.frames_sent += 1
        return frame


@dataclass(eq=False)
class _CameraLook:
    look_id: str
    max_s: float
    started: float
    pc: Any = None
    cap_task: asyncio.Task[None] | None = None
    ended: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class CameraLookRecord:
    """What the camera remembers of a finished look (for tests and the simulator's log)."""

    look_id: str
    reason: str
    by: EndedBy
    duration_s: float


class SimCamera:
    def __init__(
        self,
        device_id: str,
        settings: Settings,
        *,
        scenario: Scenario | str = Scenario.IN_BED,
        size: tuple[int, int] = (640, 480),
        fps: float = 15,
        heartbeat_interval_s: float = 300,
        max_look_s: float = 60,
        cap_lag_s: float = 0.0,
        mqtt_url: str | None = None,
    ) -> None:
        self.device_id = device_id
        self.settings = settings
        self.scene = Scene(size)
        self._scenario = Scenario(scenario)
        self.fps = fps
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_look_s = max_look_s
        # Its own cap fires this much after max_s: a camera whose clock trails the gateway's. With the gateway's cap
        # and the camera's at the same max_s, which side ends the look is a race of a few tens of milliseconds (the
        # gateway's camera/end crossing the broker); a test of the gateway's cap sets this to know the answer.
        self.cap_lag_s = cap_lag_s
        self.url = mqtt_url or settings.mqtt_url
        topics = Topics(settings.topic_root)
        self.status_topic = topics.device(device_id, DeviceTopic.STATUS)
        self.request_topic = topics.device(device_id, DeviceTopic.CAMERA_REQUEST)
        self.answer_topic = topics.device(device_id, DeviceTopic.CAMERA_ANSWER)
        self.end_topic = topics.device(device_id, DeviceTopic.CAMERA_END)
        self.state_topic = topics.device(device_id, DeviceTopic.CAMERA_STATE)
        self.heartbeat_topic = topics.device(device_id, DeviceTopic.HEARTBEAT)

        self.frames_sent = 0
        self.history: list[CameraLookRecord] = []
        self.look_ended = asyncio.Event()  # set each time a look ends (tests clear it)
        self._look: _CameraLook | None = None
        self._pcs: set[Any] = set()
        self._client: Any = None
        self._connected = asyncio.Event()
        self._conn_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False
        self._log = log.bind(device_id=device_id)

    # ------------------------------------------------------------------ properties

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @scenario.setter
    def scenario(self, value: Scenario | str) -> None:
        self._scenario = Scenario(value)

    @property
    def live(self) -> bool:
        return self._look is not None

    @property
    def look_id(self) -> str | None:
        return self._look.look_id if self._look is not None else None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._conn_task = asyncio.create_task(self._connect_forever())
        self._spawn(self._heartbeat_loop())
        try:
            async with asyncio.timeout(START_WAIT_S):
                await self._connected.wait()
        except TimeoutError:
            self._log.warning("camera.start_not_connected", url=self.url)

    async def stop(self) -> None:
        """Power off: end a running look, close every peer, say offline, disconnect."""
        if not self._running:
            return
        self._running = False
        if self._look is not None:
            await self._end(self._look, "shutdown", tell_gateway=True)
        pcs, self._pcs = list(self._pcs), set()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        tasks = [*self._tasks, *([self._conn_task] if self._conn_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._conn_task = None
        client, self._client = self._client, None
        self._connected.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                if is_connected(client):
                    client.publish(self.status_topic, DeviceStatus.OFFLINE.value.encode(), qos=1, retain=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)
        self._log.info("camera.stopped")

    async def __aenter__(self) -> SimCamera:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ MQTT

    def _publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        client = self._client
        if client is None or not is_connected(client):
            return False
        try:
            client.publish(topic, payload, qos=qos, retain=retain)
        except Exception as exc:
            self._log.warning("mqtt.publish_failed", topic=topic, error=repr(exc))
            return False
        return True

    def _publish_state(self) -> None:
        look = self._look
        state = CameraState(
            state=CameraLiveState.LIVE if look is not None else CameraLiveState.IDLE,
            look_id=look.look_id if look is not None else None,
            ts=utcnow(),
        )
        self._publish(self.state_topic, state.model_dump_json(exclude_none=True).encode(), retain=True)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        try:
            client.publish(self.status_topic, DeviceStatus.ONLINE.value.encode(), qos=1, retain=True)
            client.subscribe(self.request_topic, qos=1)
            client.subscribe(self.end_topic, qos=1)
        except Exception as exc:
            self._log.warning("mqtt.on_connect_failed", error=repr(exc))
        if client is self._client:
            self._connected.set()
            self._publish_state()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if client is self._client:
            self._connected.clear()

    async def _connect_forever(self) -> None:
        endpoint = device_endpoint(self.settings, self.url, self.device_id)
        delay = 0.5
        while True:
            client = make_client(
                client_id=self.device_id,
                persistent=False,
                on_message=self._on_message,
                will=Will(self.status_topic, DeviceStatus.OFFLINE.value.encode(), retain=True),
            )
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            self._client = client
            try:
                await connect(client, endpoint, timeout_s=CONNECT_TIMEOUT_S, protocol=self.settings.mqtt_protocol)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 2.0)
                raise
            except Exception as exc:
                self._log.warning("mqtt.connect_failed", url=self.url, error=repr(exc), retry_in_s=delay)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 2.0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            self._connected.set()
            self._log.info("mqtt.connected", url=self.url)
            return

    async def _heartbeat_loop(self) -> None:
        await self._connected.wait()
        while True:
            beat = Heartbeat(ts=utcnow(), mains=True, firmware=FIRMWARE, network="wifi")
            self._publish(self.heartbeat_topic, beat.model_dump_json(exclude_none=True).encode(), qos=0)
            await asyncio.sleep(self.heartbeat_interval_s)

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        if topic == self.request_topic:
            try:
                request = CameraRequest.model_validate_json(payload)
            except ValidationError as exc:
                self._log.error("camera.request_invalid", error=str(exc))
                return 0
            self._spawn(self._handle_request(request))
        elif topic == self.end_topic:
            try:
                end = CameraEnd.model_validate_json(payload)
            except ValidationError as exc:
                self._log.error("camera.end_invalid", error=str(exc))
                return 0
            look = self._look
            if end.by is EndedBy.GATEWAY and look is not None and look.look_id == end.look_id:
                self._spawn(self._end(look, end.reason, tell_gateway=False, by=EndedBy.GATEWAY))
        return 0

    # ------------------------------------------------------------------ looks

    def _answer(self, answer: CameraAnswer) -> None:
        self._publish(self.answer_topic, answer.model_dump_json(exclude_none=True).encode())

    async def _handle_request(self, request: CameraRequest) -> None:
        if self._look is not None:
            self._log.warning("camera.busy", look_id=request.look_id, live=self._look.look_id)
            self._answer(CameraAnswer(look_id=request.look_id, error="busy with another look"))
            return
        loop = asyncio.get_running_loop()
        look = _CameraLook(request.look_id, max_s=min(request.max_s, self.max_look_s), started=loop.time())
        self._look = look
        # The camera's own clock: from the request on, whatever the gateway does.
        look.cap_task = self._spawn(self._cap(look))
        try:
            pc = new_peer_connection(self.settings)
            look.pc = pc
            self._pcs.add(pc)

            @pc.on("connectionstatechange")  # type: ignore[untyped-decorator]
            async def on_state() -> None:
                if pc.connectionState == "failed":
                    await self._end(look, "failed", tell_gateway=True)
                elif pc.connectionState == "closed" and not look.ended:
                    # Not our own close (that comes after _end). aiortc says "closed", not "failed", both when the
                    # gateway closes its peer (its camera/end is on the way) and when the gateway died (consent to
                    # send expired): end the look unless camera/end comes within CLOSED_GRACE_S.
                    self._spawn(self._end_after(look, CLOSED_GRACE_S, "failed"))

            await pc.setRemoteDescription(RTCSessionDescription(sdp=request.sdp, type="offer"))
            pc.addTrack(SceneTrack(self, self.fps))  # no microphone: never an audio track
            await pc.setLocalDescription(await pc.createAnswer())
            if look.ended:
                return
            self._answer(CameraAnswer(look_id=look.look_id, sdp=pc.localDescription.sdp, type="answer"))
        except Exception as exc:
            self._log.error("camera.answer_failed", look_id=look.look_id, error=repr(exc))
            self._answer(CameraAnswer(look_id=look.look_id, error=f"camera failed: {type(exc).__name__}"))
            await self._end(look, "failed", tell_gateway=False)
            return
        self._publish_state()
        self._log.info("camera.live", look_id=look.look_id, max_s=look.max_s, scenario=self.scenario.value)

    async def _end_after(self, look: _CameraLook, delay_s: float, reason: str) -> None:
        await asyncio.sleep(delay_s)
        await self._end(look, reason, tell_gateway=True)

    async def _cap(self, look: _CameraLook) -> None:
        await asyncio.sleep(look.max_s + self.cap_lag_s)
        await self._end(look, "cap", tell_gateway=True)

    async def _end(self, look: _CameraLook, reason: str, *, tell_gateway: bool, by: EndedBy = EndedBy.CAMERA) -> None:
        if look.ended:
            await look.closed.wait()
            return
        look.ended = True
        duration = asyncio.get_running_loop().time() - look.started
        if tell_gateway:
            end = CameraEnd(look_id=look.look_id, reason=reason, by=EndedBy.CAMERA)
            self._publish(self.end_topic, end.model_dump_json().encode())
        if look.cap_task is not None and look.cap_task is not asyncio.current_task():
            look.cap_task.cancel()
        try:
            if look.pc is not None:
                self._pcs.discard(look.pc)
                with contextlib.suppress(Exception):
                    await look.pc.close()
        finally:
            if self._look is look:
                self._look = None
            self._publish_state()
            self.history.append(CameraLookRecord(look.look_id, reason, by, round(duration, 3)))
            self._log.info("camera.idle", look_id=look.look_id, reason=reason, by=by.value, duration_s=duration)
            look.closed.set()
            self.look_ended.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
