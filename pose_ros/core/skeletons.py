"""Keypoint layouts (names, order, limbs) and the conversions between them.

This is the one place that knows keypoint orders. Every pipeline, the ROS layer and the evaluation
use these definitions; add new layouts and conversions here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """A keypoint layout.

    Attributes:
        name: the layout name written into messages (e.g. "coco17").
        keypoints: keypoint names in model output order.
        limbs: pairs of keypoint indices drawn as bones (and, for OpenPose, the PAF limbs).
    """

    name: str
    keypoints: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def index(self, keypoint_name: str) -> int:
        return self.keypoints.index(keypoint_name)


COCO17 = Layout(
    name="coco17",
    keypoints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    # The 19 bones of the COCO keypoint annotation file ("skeleton", converted to 0-based indices).
    limbs=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
        (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
)

COCO18_OPENPOSE = Layout(
    name="coco18_openpose",
    keypoints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    # OpenPose's 19 limbs (the PAF limbs of the CMU COCO body model), in the order of its PAF channels.
    limbs=(
        (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 2), (2, 3), (3, 4), (2, 16),
        (1, 5), (5, 6), (6, 7), (5, 17), (1, 0), (0, 14), (0, 15), (14, 16), (15, 17),
    ),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (COCO17, COCO18_OPENPOSE)}


def get_layout(name: str) -> Layout:
    """The layout called `name`; raises KeyError listing the known layouts."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {sorted(LAYOUTS)}") from None


# COCO-17 index of each OpenPose COCO-18 keypoint (-1: neck, derived from the shoulders).
_COCO18_FROM_COCO17 = np.array([COCO17.keypoints.index(n) if n != "neck" else -1 for n in COCO18_OPENPOSE.keypoints])
_COCO17_FROM_COCO18 = np.array([COCO18_OPENPOSE.keypoints.index(n) for n in COCO17.keypoints])


def coco17_to_coco18(keypoints_xy: np.ndarray, confidences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 → OpenPose COCO-18. keypoints_xy (..., 17, 2), confidences (..., 17).

    The neck is the midpoint of the shoulders with the smaller of their two confidences
    (unknown, NaN and 0, when either shoulder is unknown).
    """
    src = np.where(_COCO18_FROM_COCO17 < 0, 0, _COCO18_FROM_COCO17)
    xy = keypoints_xy[..., src, :].astype(np.float32, copy=True)
    conf = confidences[..., src].astype(np.float32, copy=True)
    ls, rs = COCO17.index("left_shoulder"), COCO17.index("right_shoulder")
    neck = COCO18_OPENPOSE.index("neck")
    xy[..., neck, :] = 0.5 * (keypoints_xy[..., ls, :] + keypoints_xy[..., rs, :])
    conf[..., neck] = np.minimum(confidences[..., ls], confidences[..., rs])
    return xy, conf


def coco18_to_coco17(keypoints_xy: np.ndarray, confidences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose COCO-18 → COCO-17 (drops the neck). keypoints_xy (..., 18, 2), confidences (..., 18)."""
    return keypoints_xy[..., _COCO17_FROM_COCO18, :], confidences[..., _COCO17_FROM_COCO18]
