"""A simulated base unit (trygghetstelefon) with a speaker and a microphone, paired with its pendants.

- It is an alarm device of its own (a :class:`SimDevice` of type ``base_unit``: outbox, heartbeats, status) and
  has a second MQTT connection for voice (client id ``{id}-voice``, clean session, same login), on which it
  publishes its retained ``voice/state`` (capabilities ``speaker``, ``microphone``) and listens for
  ``voice/request`` and ``voice/end``.
- :meth:`SimBaseUnit.press` raises an alarm from the unit or one of its pendants; once the alarm is ``stored`` the
  unit calls (``voice/call``) and rings until an operator answers (``voice/request``) or ``max_ring_s`` passes.
- In a call it plays a synthetic tone (``tone_hz``, 1 kHz by default; optional timed markers for benchmarks) and
  measures what it hears (:class:`firmware_sim.audio.Listener`: energy at the browser's frequency, markers), in
  memory only: no disk. It caps a call at the request's ``max_s`` on its own clock; one call at a time.
- It ends a call whose peer connection fails, or is closed by the other side without a ``voice/end`` within
  ``CLOSED_GRACE_S`` (a gateway that died: aiortc reports ``closed`` once ICE consent expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiortc import RTCSessionDescription
from pydantic import ValidationError

from devices import AlarmType, DeviceTopic, DeviceType, Topics
from devices.messages import utcnow
from devices.voice import (
    Capability,
    EndedBy,
    VoiceAnswer,
    VoiceCall,
    VoiceEnd,
    VoiceLineState,
    VoiceRequest,
    VoiceState,
)
from firmware_sim.audio import Listener, ToneTrack
from firmware_sim.credentials import device_endpoint
from firmware_sim.device import SimDevice
from trygg.mqtt import connect, is_connected, make_client
from trygg.settings import Settings
from trygg.webrtc import new_peer_connection

log = structlog.get_logger(__name__)

STORED_WAIT_S = 60.0
CLOSED_GRACE_S = 2.0  # a peer closed by the other side: how long to wait for voice/end before ending the call


@dataclass(eq=False)
class UnitCall:
    call_id: str
    alarm_device_id: str
    alarm_id: str | None
    callback: bool = False
    pc: Any = None
    tone: ToneTrack | None = None
    heard: Listener = field(default_factory=Listener)
    state: VoiceLineState = VoiceLineState.RINGING
    ended_reason: str | None = None
    ended_by: EndedBy | None = None
    timer: asyncio.Task[None] | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class SimBaseUnit:
    def __init__(
        self,
        device_id: str,
        settings: Settings,
        *,
        pendants: Sequence[SimDevice] = (),
        tone_hz: float | None = 1000.0,
        marker_hz: float | None = None,
        marker_every_s: float = 2.0,
        listen_marker_hz: float | None = None,
        max_ring_s: float = 120.0,
        capabilities: Sequence[Capability] = (Capability.SPEAKER, Capability.MICROPHONE),
        heartbeat_interval_s: float = 60.0,
        mqtt_url: str | None = None,
        call_on_alarm: bool = True,
    ) -> None:
        self.device_id = device_id
        self.settings = settings
        self.device = SimDevice(
            device_id, DeviceType.BASE_UNIT, settings, mqtt_url=mqtt_url, heartbeat_interval_s=heartbeat_interval_s
        )
        self.pendants = list(pendants)
        self.tone_hz = tone_hz
        self.marker_hz = marker_hz
        self.marker_every_s = marker_every_s
        self.listen_marker_hz = listen_marker_hz
        self.max_ring_s = max_ring_s
        self.capabilities = list(capabilities)
        self.call_on_alarm = call_on_alarm
        self.url = mqtt_url or settings.mqtt_url
        topics = Topics(settings.topic_root)
        self._topic = {kind: topics.device(device_id, kind) for kind in DeviceTopic}
        self.calls: list[UnitCall] = []  # every call, newest last
        self.current: UnitCall | None = None
        self.refusals: list[tuple[str, str]] = []  # (call_id, reason) of calls the gateway refused to ring
        self.changed = asyncio.Condition()
        self._client: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log = log.bind(device_id=device_id)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.device.start()
        for pendant in self.pendants:
            await pendant.start()
        await self.start_voice()

    async def start_voice(self) -> None:
        """Connect the voice line (``start`` does)."""
        endpoint = device_endpoint(self.settings, self.url, self.device_id)
        client = make_client(client_id=f"{self.device_id}-voice", persistent=False, on_message=self._on_message)
        client.on_connect = self._on_connect
        self._client = client
        await connect(client, endpoint, timeout_s=10.0, protocol=self.settings.mqtt_protocol)

    async def stop_voice(self) -> None:
        """Drop the voice line (a unit whose voice module hangs: its alarm connection stays)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)

    async def stop(self) -> None:
        if self.current is not None:
            await self._end(self.current, "shutdown", tell_gateway=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.stop_voice()
        for pendant in self.pendants:
            await pendant.stop()
        await self.device.stop()

    async def __aenter__(self) -> SimBaseUnit:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ what a person does

    async def press(self, pendant: int | None = None, alarm_type: AlarmType | str | None = None) -> str:
        """A press on pendant number ``pendant`` (or the unit's own button): the alarm, then (once stored) the
        call. Returns the alarm id."""
        source = self.device if pendant is None else self.pendants[pendant]
        alarm_id = await source.press(alarm_type or AlarmType.ASSISTANCE)
        if self.call_on_alarm:
            self._spawn(self._call_when_stored(source, alarm_id))
        return alarm_id

    async def call(self, alarm_device_id: str, alarm_id: str) -> UnitCall:
        """Call for a stored alarm (``voice/call``) and ring."""
        call = UnitCall(uuid.uuid4().hex, alarm_device_id, alarm_id)
        if self.current is not None:
            raise RuntimeError("the unit is already in a call")
        self.current = call
        self.calls.append(call)
        message = VoiceCall(
            call_id=call.call_id,
            alarm_id=alarm_id,
            alarm_device_id=None if alarm_device_id == self.device_id else alarm_device_id,
            ts=utcnow(),
            max_ring_s=self.max_ring_s,
        )
        self._publish(DeviceTopic.VOICE_CALL, message.model_dump_json(exclude_none=True).encode())
        self._publish_state()
        call.timer = self._spawn(self._ring_timeout(call))
        self._log.info("voice.calling", call_id=call.call_id, alarm_id=alarm_id)
        await self._notify()
        return call

    async def hang_up(self) -> None:
        if self.current is not None:
            await self._end(self.current, "hung_up", tell_gateway=True)

    async def wait_for(self, predicate: Any, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s), self.changed:
            await self.changed.wait_for(predicate)

    # ------------------------------------------------------------------ MQTT

    def publish_voice(self, kind: DeviceTopic, payload: bytes) -> bool:
        """Publish any payload on one of its voice topics (tests: a forged or malformed call)."""
        return self._publish(kind, payload)

    def _publish(self, kind: DeviceTopic, payload: bytes, *, retain: bool = False) -> bool:
        client = self._client
        if client is None or not is_connected(client):
            self._log.warning("voice.publish_failed", kind=kind.value)
            return False
        client.publish(self._topic[kind], payload, qos=1, retain=retain)
        return True

    def _publish_state(self) -> None:
        call = self.current
        state = VoiceState(
            capabilities=self.capabilities,
            state=call.state if call is not None else VoiceLineState.IDLE,
            call_id=call.call_id if call is not None else None,
            ts=utcnow(),
        )
        self._publish(DeviceTopic.VOICE_STATE, state.model_dump_json(exclude_none=True).encode(), retain=True)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        client.subscribe(self._topic[DeviceTopic.VOICE_REQUEST], qos=1)
        client.subscribe(self._topic[DeviceTopic.VOICE_END], qos=1)
        if client is self._client:
            self._publish_state()

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        try:
            if topic == self._topic[DeviceTopic.VOICE_REQUEST]:
                self._spawn(self._handle_request(VoiceRequest.model_validate_json(payload)))
            elif topic == self._topic[DeviceTopic.VOICE_END]:
                end = VoiceEnd.model_validate_json(payload)
                call = self.current
                if end.by is EndedBy.GATEWAY and call is not None and call.call_id == end.call_id:
                    self._spawn(self._end(call, end.reason, tell_gateway=False, by=EndedBy.GATEWAY))
                elif end.by is EndedBy.GATEWAY and (call is None or call.call_id != end.call_id):
                    self.refusals.append((end.call_id, end.reason))  # a call of ours the gateway refused
                    self._spawn(self._notify())
        except ValidationError as exc:
            self._log.error("voice.message_invalid", topic=topic, error=str(exc))
        return 0

    # ------------------------------------------------------------------ calls

    async def _call_when_stored(self, source: SimDevice, alarm_id: str) -> None:
        try:
            await source.wait_for_status(alarm_id, "stored", STORED_WAIT_S)
        except TimeoutError:
            self._log.warning("voice.alarm_not_stored", alarm_id=alarm_id)
            return
        if self.current is None:
            await self.call(source.device_id, alarm_id)

    def _answer(self, answer: VoiceAnswer) -> None:
        self._publish(DeviceTopic.VOICE_ANSWER, answer.model_dump_json(exclude_none=True).encode())

    async def _handle_request(self, request: VoiceRequest) -> None:
        call = self.current
        if call is not None and call.call_id != request.call_id:
            self._answer(VoiceAnswer(call_id=request.call_id, error="busy"))
            return
        if not {Capability.SPEAKER, Capability.MICROPHONE} <= set(self.capabilities):
            self._answer(VoiceAnswer(call_id=request.call_id, error="no speaker or microphone"))
            return
        if call is None:  # a callback
            call = UnitCall(request.call_id, self.device_id, request.alarm_id, callback=True)
            self.current = call
            self.calls.append(call)
        if call.timer is not None:
            call.timer.cancel()
        call.heard = Listener(marker_hz=self.listen_marker_hz)
        try:
            pc = new_peer_connection(self.settings)
            call.pc = pc

            @pc.on("connectionstatechange")  # type: ignore[untyped-decorator]
            async def on_state() -> None:
                if pc.connectionState == "connected":
                    call.connected.set()
                elif pc.connectionState == "failed":
                    await self._end(call, "failed", tell_gateway=True)
                elif pc.connectionState == "closed" and call.ended_reason is None:
                    # Not our own close (that comes after _end). aiortc says "closed", not "failed", both when the
                    # gateway closes its peer (its voice/end is on the way) and when the gateway died (consent to
                    # send expired): end the call unless voice/end comes within CLOSED_GRACE_S.
                    self._spawn(self._end_after(call, CLOSED_GRACE_S, "failed"))

            @pc.on("track")  # type: ignore[untyped-decorator]
            def on_track(track: Any) -> None:
                if track.kind == "audio":
                    self._spawn(call.heard.consume(track))

            await pc.setRemoteDescription(RTCSessionDescription(sdp=request.sdp, type="offer"))
            call.tone = ToneTrack(self.tone_hz, marker_hz=self.marker_hz, marker_every_s=self.marker_every_s)
            pc.addTrack(call.tone)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            self._log.error("voice.answer_failed", call_id=call.call_id, error=repr(exc))
            self._answer(VoiceAnswer(call_id=call.call_id, error=f"unit failed: {type(exc).__name__}"))
            await self._end(call, "failed", tell_gateway=False)
            return
        if call.state is not VoiceLineState.RINGING or self.current is not call:
            return
        call.state = VoiceLineState.IN_CALL
        self._answer(VoiceAnswer(call_id=call.call_id, sdp=pc.localDescription.sdp, type="answer"))
        call.timer = self._spawn(self._cap(call, request.max_s))
        self._publish_state()
        self._log.info("voice.in_call", call_id=call.call_id, callback=request.callback)
        await self._notify()

    async def _ring_timeout(self, call: UnitCall) -> None:
        await asyncio.sleep(self.max_ring_s)
        await self._end(call, "no_answer", tell_gateway=True)

    async def _end_after(self, call: UnitCall, delay_s: float, reason: str) -> None:
        await asyncio.sleep(delay_s)
        await self._end(call, reason, tell_gateway=True)

    async def _cap(self, call: UnitCall, max_s: float) -> None:
        await asyncio.sleep(max_s)
        await self._end(call, "cap", tell_gateway=True)

    async def _end(self, call: UnitCall, reason: str, *, tell_gateway: bool, by: EndedBy = EndedBy.UNIT) -> None:
        if call.ended.is_set() or call.ended_reason is not None:
            return
        call.ended_reason, call.ended_by = reason, by
        if tell_gateway:
            end = VoiceEnd(call_id=call.call_id, reason=reason, by=EndedBy.UNIT)
            self._publish(DeviceTopic.VOICE_END, end.model_dump_json().encode())
        if call.timer is not None and call.timer is not asyncio.current_task():
            call.timer.cancel()
        if call.pc is not None:
            with contextlib.suppress(Exception):
                await call.pc.close()
        call.state = VoiceLineState.IDLE
        if self.current is call:
            self.current = None
        self._publish_state()
        self._log.info("voice.ended", call_id=call.call_id, reason=reason, by=by.value)
        call.ended.set()
        await self._notify()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
