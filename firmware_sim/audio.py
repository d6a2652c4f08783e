"""Synthetic audio for simulated units and benchmarks: a tone (with optional timed markers) as a WebRTC track,
and a listener that measures what arrives, all in memory (nothing is written anywhere).

- :class:`ToneTrack` sends a sine at ``tone_hz`` in 20 ms frames (48 kHz, mono). With ``marker_hz`` set, it sends
  a 60 ms burst at that frequency every ``marker_every_s`` instead of silence between, and remembers when each burst
  left (``marker_times``): the "mouth" side of a mouth-to-ear delay.
- :class:`Listener` takes the frames of a received track: the energy spectrum summed over the call (20 ms frames,
  50 Hz bins), :meth:`Listener.ratio` the energy at a frequency over the median of the band (above the noise),
  and the arrival time of each marker burst (the "ear" side).
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
BIN_HZ = RATE / FRAME_SAMPLES  # 50 Hz
MARKER_S = 0.06


class ToneTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(
        self,
        tone_hz: float | None = 1000.0,
        *,
        amplitude: float = 0.3,
        marker_hz: float | None = None,
        marker_every_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.tone_hz = tone_hz
        self.amplitude = amplitude
        self.marker_hz = marker_hz
        self.marker_every_s = marker_every_s
        self.marker_times: list[float] = []  # time.monotonic() when each marker's first frame left
        self._t0: float | None = None
        self._n = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        else:
            wait = self._t0 + self._n * FRAME_SAMPLES / RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
        start = self._n * FRAME_SAMPLES
        t = (start + np.arange(FRAME_SAMPLES)) / RATE
        signal = np.zeros(FRAME_SAMPLES)
        if self.tone_hz is not None:
            signal += np.sin(2 * np.pi * self.tone_hz * t)
        if self.marker_hz is not None:
            phase = (start / RATE) % self.marker_every_s
            if phase < MARKER_S:
                if phase < FRAME_SAMPLES / RATE:
                    self.marker_times.append(time.monotonic())
                signal = np.sin(2 * np.pi * self.marker_hz * t) * 2
        samples = np.clip(signal * self.amplitude * 32767, -32768, 32767).astype(np.int16)
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = RATE
        frame.pts = start
        frame.time_base = Fraction(1, RATE)
        self._n += 1
        return frame


class Listener:
    """What a peer hears: the summed spectrum, and marker onsets at ``marker_hz`` (when set)."""

    def __init__(self, marker_hz: float | None = None, marker_threshold: float = 0.05) -> None:
        self.spectrum = np.zeros(FRAME_SAMPLES // 2 + 1)
        self.frames = 0
        self.marker_hz = marker_hz
        self.marker_threshold = marker_threshold
        self.marker_times: list[float] = []  # time.monotonic() when each marker's first frame arrived
        self._in_marker = False
        self._pending = np.zeros(0)

    def feed(self, frame: Any) -> None:
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        mono = data.reshape(-1, channels)[:, 0].astype(np.float64) / 32768.0
        if frame.sample_rate != RATE:  # resample crudely to 48 kHz (aiortc decodes Opus at 48 kHz anyway)
            mono = np.interp(
                np.linspace(0, len(mono), round(len(mono) * RATE / frame.sample_rate)), np.arange(len(mono)), mono
            )
        self._pending = np.concatenate([self._pending, mono])
        while len(self._pending) >= FRAME_SAMPLES:
            chunk, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
            power = np.abs(np.fft.rfft(chunk * np.hanning(FRAME_SAMPLES))) ** 2
            self.spectrum += power
            self.frames += 1
            if self.marker_hz is not None:
                level = float(np.sqrt(power[round(self.marker_hz / BIN_HZ)])) / FRAME_SAMPLES
                if level > self.marker_threshold and not self._in_marker:
                    self.marker_times.append(time.monotonic())
                self._in_marker = level > self.marker_threshold / 2

    def ratio(self, hz: float) -> float:
        """Energy at ``hz`` over the median energy of 100-4000 Hz: how far the tone stands above the noise."""
        if self.frames == 0:
            return 0.0
        k = round(hz / BIN_HZ)
        band = self.spectrum[2 : round(4000 / BIN_HZ)]
        noise = float(np.median(band)) or 1e-12
        return float(max(self.spectrum[k - 1 : k + 2])) / noise

    async def consume(self, track: Any) -> None:
        """Read ``track`` until it ends, feeding every frame."""
        try:
            while True:
                self.feed(await track.recv())
        except MediaStreamError:
            return
