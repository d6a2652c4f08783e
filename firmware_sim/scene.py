"""A synthetic night-time bedroom for the simulated camera, drawn with OpenCV and numpy.

``Scene(size).render(scenario, t)`` is deterministic in (scenario, t): the same time gives the same picture.
The room has texture (patterned wallpaper, floor boards, a checked quilt, a framed picture) so that a blur
is measurable; the person is drawn on top:

- ``in_bed``: lying in bed under the quilt, the chest rising and falling (one breath every ``BREATH_PERIOD_S``);
- ``absent``: the bed is empty (quilt folded back);
- ``on_floor``: lying on the floor beside the bed, breathing too.
"""

from __future__ import annotations

import math
from enum import StrEnum

import cv2
import numpy as np

BREATH_PERIOD_S = 3.0
SUPPORTED_SIZES = ((640, 480), (320, 240))


class Scenario(StrEnum):
    IN_BED = "in_bed"
    ABSENT = "absent"
    ON_FLOOR = "on_floor"


class Scene:
    """Renders frames of ``size`` (width, height); the static room is drawn once."""

    def __init__(self, size: tuple[int, int] = (640, 480)) -> None:
        if tuple(size) not in SUPPORTED_SIZES:
            raise ValueError(f"size must be one of {SUPPORTED_SIZES}, got {size}")
        self.width, self.height = int(size[0]), int(size[1])
        self.k = self.width / 640  # drawing scale: all coordinates below are for 640x480
        self._room = self._draw_room()
        self._bed_made = self._draw_bed(self._room.copy(), made=True)
        self._bed_empty = self._draw_bed(self._room.copy(), made=False)

    # ------------------------------------------------------------------ geometry helpers

    def _p(self, x: float, y: float) -> tuple[int, int]:
        return round(x * self.k), round(y * self.k)

    def _s(self, v: float) -> int:
        return max(1, round(v * self.k))

    # ------------------------------------------------------------------ static parts

    def _draw_room(self) -> np.ndarray:
        w, h = self.width, self.height
        img = np.zeros((h, w, 3), np.uint8)
        wall_h = self._s(300)
        # Wallpaper: a dim base with a fine diamond pattern (fine texture: what a blur removes).
        img[:wall_h] = (70, 80, 95)
        step = self._s(16)
        for x in range(-h, w + h, step):
            cv2.line(img, (x, 0), (x + wall_h, wall_h), (95, 105, 120), 1)
            cv2.line(img, (x, 0), (x - wall_h, wall_h), (55, 62, 75), 1)
        # Floor boards.
        img[wall_h:] = (40, 60, 85)
        for y in range(wall_h, h, self._s(18)):
            cv2.line(img, (0, y), (w, y), (25, 40, 60), 1)
        for i, y in enumerate(range(wall_h, h, self._s(18))):
            for x in range((i % 3) * self._s(60), w, self._s(180)):
                cv2.line(img, (x, y), (x, y + self._s(18)), (25, 40, 60), 1)
        # A framed picture and a night lamp on a bedside table.
        cv2.rectangle(img, self._p(450, 60), self._p(590, 160), (30, 30, 30), self._s(6))
        cv2.rectangle(img, self._p(456, 66), self._p(584, 154), (120, 140, 90), -1)
        cv2.circle(img, self._p(520, 110), self._s(25), (60, 170, 220), -1)
        cv2.rectangle(img, self._p(540, 250), self._p(620, 330), (50, 70, 100), -1)
        cv2.circle(img, self._p(580, 225), self._s(22), (150, 210, 240), -1)
        return img

    def _draw_bed(self, img: np.ndarray, *, made: bool) -> np.ndarray:
        # Frame and headboard.
        cv2.rectangle(img, self._p(40, 180), self._p(80, 400), (35, 50, 75), -1)
        cv2.rectangle(img, self._p(80, 250), self._p(500, 380), (45, 65, 95), -1)
        # Mattress and pillow.
        cv2.rectangle(img, self._p(80, 240), self._p(500, 300), (200, 200, 205), -1)
        cv2.ellipse(img, self._p(130, 255), self._p(40, 18), 0, 0, 360, (230, 230, 235), -1)
        # The quilt: a checked pattern, pulled up or folded back.
        x0, x1 = (170, 500) if made else (380, 500)
        y0, y1 = self._s(232), self._s(310)
        cv2.rectangle(img, (self._s(x0), y0), (self._s(x1), y1), (130, 60, 60), -1)
        cell = self._s(12)
        for x in range(self._s(x0), self._s(x1), cell):
            cv2.line(img, (x, y0), (x, y1), (170, 100, 90), 1)
        for y in range(y0, y1, cell):
            cv2.line(img, (self._s(x0), y), (self._s(x1), y), (170, 100, 90), 1)
        return img

    # ------------------------------------------------------------------ the person

    @staticmethod
    def breath(t: float) -> float:
        """0..1: how far the chest is raised at time ``t``."""
        return 0.5 - 0.5 * math.cos(2 * math.pi * t / BREATH_PERIOD_S)

    def _person_in_bed(self, img: np.ndarray, t: float) -> None:
        b = self.breath(t)
        # Head on the pillow, with a face (eyes, mouth: what the privacy modes must hide).
        cv2.circle(img, self._p(135, 248), self._s(20), (120, 160, 200), -1)
        cv2.circle(img, self._p(128, 243), self._s(3), (20, 20, 20), -1)
        cv2.circle(img, self._p(142, 243), self._s(3), (20, 20, 20), -1)
        cv2.line(img, self._p(129, 257), self._p(141, 257), (40, 40, 120), self._s(2))
        # The chest under the quilt rises with each breath.
        rise = 16 + 22 * b
        cv2.ellipse(img, self._p(240, 262), self._p(70, rise), 0, 180, 360, (175, 120, 120), -1)
        cv2.ellipse(img, self._p(240, 262), self._p(70, rise), 0, 180, 360, (215, 170, 160), self._s(2))
        # Legs under the quilt.
        cv2.ellipse(img, self._p(390, 265), self._p(95, 16), 0, 180, 360, (140, 70, 70), -1)

    def _person_on_floor(self, img: np.ndarray, t: float) -> None:
        b = self.breath(t)
        cv2.ellipse(img, self._p(300, 430), self._p(130, 22 + 6 * b), 0, 0, 360, (90, 110, 150), -1)
        cv2.ellipse(img, self._p(300, 430), self._p(130, 22 + 6 * b), 0, 0, 360, (140, 160, 200), self._s(2))
        cv2.circle(img, self._p(150, 425), self._s(20), (120, 160, 200), -1)
        cv2.circle(img, self._p(144, 420), self._s(3), (20, 20, 20), -1)
        cv2.line(img, self._p(430, 425), self._p(500, 445), (90, 110, 150), self._s(14))
        cv2.line(img, self._p(230, 425), self._p(260, 470), (90, 110, 150), self._s(10))

    def render(self, scenario: Scenario | str, t: float) -> np.ndarray:
        """The frame at time ``t`` (seconds) as an HxWx3 uint8 BGR array (a new array each call)."""
        scenario = Scenario(scenario)
        if scenario is Scenario.IN_BED:
            img = self._bed_made.copy()
            self._person_in_bed(img, t)
        elif scenario is Scenario.ABSENT:
            img = self._bed_empty.copy()
        else:
            img = self._bed_empty.copy()
            self._person_on_floor(img, t)
        return img
