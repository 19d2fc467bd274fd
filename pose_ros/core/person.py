"""The one result type that flows from estimators to everything downstream."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class BodyModelParams:
    """Parameters of a body model fitted to a person (see msg/BodyModel.msg for conventions)."""

    name: str
    betas: np.ndarray  # (S,) shape coefficients
    pose: np.ndarray  # (3 * J,) axis-angle, radians
    translation: np.ndarray  # (3,) metres, camera optical frame
    camera: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    pose_joint_names: tuple[str, ...] = ()
    vertices: np.ndarray | None = None  # (V, 3) metres, camera optical frame
    faces: np.ndarray | None = None  # (F, 3) vertex indices


@dataclass
class Person:
    """One person in one image.

    Attributes:
        keypoints_xy: (K, 2) float32 pixels, pixel centres at integer coordinates; NaN when unknown.
        confidences: (K,) float32 in [0, 1]; 0 when unknown.
        score: person confidence in [0, 1].
        bbox_xywh: (4,) float32 pixels: x_min, y_min, width, height.
        layout: keypoint layout name from `pose_ros.core.skeletons.LAYOUTS`.
        id: per-frame index, or a track id when `tracked`.
        keypoints_3d: (K, 3) float32 metres in the camera optical frame, or None when unknown.
        keypoints_3d_source: "depth", "body_model" or "" (none), see msg/Person.msg.
        body_model: fitted body-model parameters, or None.
        body_model_stamp_ns: header stamp (integer nanoseconds) of the frame `body_model` was fitted on.
    """

    keypoints_xy: np.ndarray
    confidences: np.ndarray
    score: float
    bbox_xywh: np.ndarray
    layout: str
    id: int = 0
    tracked: bool = False
    keypoints_3d: np.ndarray | None = None
    keypoints_3d_source: str = ""
    body_model: BodyModelParams | None = None
    body_model_stamp_ns: int = 0

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints_xy.shape[0])


def bbox_from_keypoints(keypoints_xy: np.ndarray, confidences: np.ndarray, min_confidence: float = 0.0) -> np.ndarray:
    """Tight box [x_min, y_min, width, height] (pixels) around the keypoints above `min_confidence`.

    Returns zeros when no keypoint qualifies.
    """
    ok = (confidences > min_confidence) & np.isfinite(keypoints_xy).all(axis=1)
    if not ok.any():
        return np.zeros(4, np.float32)
    lo = keypoints_xy[ok].min(axis=0)
    hi = keypoints_xy[ok].max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], np.float32)
