"""The cameras of ``bench.checkin``: SimCameras in their own process, each frame stamped with its capture time.

    python -m bench._checkin_cameras --mqtt-url mqtt://127.0.0.1:PORT --workdir DIR --count 16 \
        --sizes 640x480,320x240 [--fps 15]

Camera ids are ``cam-<W>x<H>-<i>``. The stamp: SimCamera's ``SceneTrack`` draws each frame with
``camera.scene.render(scenario, t)`` right after it waited for the frame's time, so this script replaces
``camera.scene`` with a wrapper that renders the scene and then paints ``time.monotonic()`` (CLOCK_MONOTONIC, the
same clock in every process of this machine) into the top rows: 48 bits (40 bits of microseconds modulo 2**40,
8 bits of checksum) as 16 x 3 black/white blocks of ``width / 16`` pixels (40 px at 640x480, 20 px at 320x240),
big enough to come through VP8 twice (camera -> gateway -> operator) unchanged. The operator reads the blocks'
centres from the decoded luma plane (:func:`read_stamp`). No firmware_sim file is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware_sim.camera import SimCamera
from firmware_sim.scene import Scenario, Scene
from testing.harness import make_settings
from trygg.logging import configure_logging

COLUMNS = 16
ROWS = 3
VALUE_BITS = 40
CHECK_BITS = 8
STAMP_MOD = 1 << VALUE_BITS


def camera_id(size: tuple[int, int], index: int) -> str:
    return f"cam-{size[0]}x{size[1]}-{index}"


def parse_size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def _checksum(value: int) -> int:
    total = 0x5A
    for shift in range(0, VALUE_BITS, 8):
        total = (total * 31 + ((value >> shift) & 0xFF)) & 0xFF
    return total


def _bits(value: int) -> list[int]:
    word = (value << CHECK_BITS) | _checksum(value)
    return [(word >> (VALUE_BITS + CHECK_BITS - 1 - i)) & 1 for i in range(VALUE_BITS + CHECK_BITS)]


def now_us() -> int:
    return time.monotonic_ns() // 1000


def paint_stamp(image: np.ndarray, value_us: int) -> None:
    """Paints ``value_us`` (mod 2**40) into the top ``3 * width / 16`` rows of a BGR image, in place."""
    block = image.shape[1] // COLUMNS
    for i, bit in enumerate(_bits(value_us % STAMP_MOD)):
        r, c = divmod(i, COLUMNS)
        image[r * block : (r + 1) * block, c * block : (c + 1) * block] = 255 if bit else 0


def read_stamp(luma: np.ndarray) -> int | None:
    """The stamp from a frame's luma plane (HxW uint8), or None if the checksum does not match."""
    block = luma.shape[1] // COLUMNS
    q = block // 4
    word = 0
    for i in range(COLUMNS * ROWS):
        r, c = divmod(i, COLUMNS)
        cell = luma[r * block + q : (r + 1) * block - q, c * block + q : (c + 1) * block - q]
        word = (word << 1) | int(cell.mean() > 128)
    value, check = word >> CHECK_BITS, word & ((1 << CHECK_BITS) - 1)
    return value if _checksum(value) == check else None


def stamp_age_us(stamp: int, at_us: int) -> int:
    """``at_us - stamp`` on the 40-bit circle (stamps wrap every 12.7 days of uptime)."""
    return (at_us - stamp) % STAMP_MOD


class StampedScene:
    """A Scene whose frames carry their capture time (``time.monotonic()`` when the frame was rendered)."""

    def __init__(self, scene: Scene) -> None:
        self._scene = scene
        self.width, self.height = scene.width, scene.height

    def render(self, scenario: Scenario | str, t: float) -> np.ndarray:
        image = self._scene.render(scenario, t)
        paint_stamp(image, now_us())
        return image


async def run(args: argparse.Namespace) -> None:
    settings = make_settings(Path(args.workdir), args.mqtt_url, webrtc_host_addresses=["127.0.0.1"])
    cameras: list[SimCamera] = []
    for size in (parse_size(s) for s in args.sizes.split(",")):
        for i in range(args.count):
            cam = SimCamera(camera_id(size, i), settings, size=size, fps=args.fps, max_look_s=args.max_look_s)
            scene: Any = StampedScene(cam.scene)
            cam.scene = scene
            cameras.append(cam)
    await asyncio.gather(*(cam.start() for cam in cameras))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"cameras ready: {len(cameras)}", flush=True)
    await stop.wait()
    await asyncio.gather(*(cam.stop() for cam in cameras), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--count", type=int, default=16, help="cameras per size")
    parser.add_argument("--sizes", default="640x480,320x240")
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("--max-look-s", type=float, default=600)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    configure_logging(args.log_level)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
