"""Plain landmark containers shared by the model layer (MediaPipe wrappers) and the science layer.

They hold numpy arrays only (no MediaPipe objects), so `science/` can use them without importing `models/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

N_POSE_KEYPOINTS = 33
N_HAND_KEYPOINTS = 21


@dataclass
class PoseFrames:
    """detected: (N,) bool; keypoints: (N, 33, 4) float32 = normalised x, y (0..1 of width/height), z (same scale
    as x, hip-centred depth), visibility; NaN where no pose was found."""

    detected: np.ndarray
    keypoints: np.ndarray

    @property
    def coverage(self) -> float:
        return float(self.detected.mean()) if len(self.detected) else 0.0


@dataclass
class HandDetection:
    """One detected hand: `label` Left/Right (the person's own hand; see `mirrored`), classifier score,
    keypoints (21, 3) normalised x, y, z and the landmark bounding box (x0, y0, x1, y1), normalised."""

    label: str
    score: float
    keypoints: np.ndarray
    box: np.ndarray


@dataclass
class HandFrames:
    hands: list[list[HandDetection]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hands)

    @property
    def coverage(self) -> float:
        return float(np.mean([len(h) > 0 for h in self.hands])) if self.hands else 0.0
