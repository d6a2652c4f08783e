"""The privacy filter of a camera look: pure functions on BGR frames (numpy, OpenCV), testable without WebRTC.

- ``full``: the frame unchanged.
- ``blurred``: shapes and posture stay visible, detail does not: the frame is shrunk to 1/8 of its width
  (area averaging), blurred there, enlarged again and blurred once more. High-frequency energy (variance of
  the Laplacian) drops by more than 95 %.
- ``silhouette``: no picture at all, only a coarse person/room shape on a dark background. Everything is
  computed on a grid of ``SILHOUETTE_GRID_W`` cells across (80 at any input size): coarse outlines of large
  objects (Canny on the blurred grid image) in grey, and what moves (MOG2 background subtraction, so a
  breathing chest or a person getting up shows) in white. Each output cell is one flat value, so no detail
  finer than a cell (8x8 px at 640x480) can reach the operator.

The filter keeps per-look state (the background model) in :class:`PrivacyState`; use one per look.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

BLUR_FACTOR = 8
SILHOUETTE_GRID_W = 80
_OUTLINE = 110  # grey level of static outlines
_MOVING = 255  # grey level of moving parts


class PrivacyMode(StrEnum):
    FULL = "full"
    BLURRED = "blurred"
    SILHOUETTE = "silhouette"


@dataclass(slots=True)
class PrivacyState:
    """What a filter remembers between the frames of one look (nothing is kept after the look)."""

    subtractor: Any = None
    frames: int = 0


def apply_privacy(frame: np.ndarray, mode: PrivacyMode | str, state: PrivacyState | None = None) -> np.ndarray:
    """The frame as the operator may see it under ``mode``. ``frame`` is HxWx3 uint8 BGR; so is the result."""
    mode = PrivacyMode(mode)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got shape {frame.shape} dtype {frame.dtype}")
    if state is not None:
        state.frames += 1
    if mode is PrivacyMode.FULL:
        return frame
    if mode is PrivacyMode.BLURRED:
        return blur(frame)
    return silhouette(frame, state if state is not None else PrivacyState())


def blur(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    small_w, small_h = max(2, w // BLUR_FACTOR), max(2, h // BLUR_FACTOR)
    small = cv2.resize(frame, (small_w, small_h), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    out: np.ndarray = cv2.GaussianBlur(big, (0, 0), BLUR_FACTOR / 2)
    return out


def silhouette(frame: np.ndarray, state: PrivacyState) -> np.ndarray:
    h, w = frame.shape[:2]
    grid_w = min(SILHOUETTE_GRID_W, w)
    grid_h = max(1, round(h * grid_w / w))
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (grid_w, grid_h), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    edges = cv2.Canny(small, 40, 100)
    if state.subtractor is None:
        state.subtractor = cv2.createBackgroundSubtractorMOG2(history=150, varThreshold=16, detectShadows=False)
    moving = state.subtractor.apply(small)
    moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    cells = np.zeros((grid_h, grid_w), np.uint8)
    cells[edges > 0] = _OUTLINE
    cells[moving > 0] = _MOVING
    big = cv2.resize(cells, (w, h), interpolation=cv2.INTER_NEAREST)
    out: np.ndarray = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    return out


def high_frequency_energy(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: how much fine detail a frame holds."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
