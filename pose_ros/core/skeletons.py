"""Keypoint layouts (names, order, limbs) and the conversions between them.

This is the one place that knows keypoint orders. Every pipeline, the ROS layer and the evaluation
use these definitions; add new layouts and conversions here.
"""

from __future__ import annotations

from collections.abc import Callable
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

MPII16 = Layout(
    name="mpii16",
    keypoints=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
        "left_wrist",
    ),
    # MPII Human Pose joint order (its annotation ids 0..15); bones: legs, spine to head, arms from the thorax.
    limbs=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
    ),
)

BLAZEPOSE33 = Layout(
    name="blazepose33",
    keypoints=(
        "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
        "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
        "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
        "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    ),
    # MediaPipe Pose landmark order; bones as MediaPipe draws them (face, arms and hands, torso, legs and feet).
    limbs=(
        (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
        (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
        (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
        (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
        (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
    ),
)

# Parent of each SMPL joint in its kinematic tree (-1: the root). The bones are (parent, child).
SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

SMPL24 = Layout(
    name="smpl24",
    keypoints=(
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
        "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
        "right_hand",
    ),
    limbs=tuple((parent, child) for child, parent in enumerate(SMPL24_PARENTS) if parent >= 0),
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout for layout in (COCO17, COCO18_OPENPOSE, MPII16, BLAZEPOSE33, SMPL24)
}


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


def _index_by_name(src: Layout, dst: Layout) -> np.ndarray:
    """For each keypoint of `dst`, its index in `src` by name (-1 when `src` has no keypoint of that name)."""
    return np.array([src.keypoints.index(n) if n in src.keypoints else -1 for n in dst.keypoints])


def _gather(
    keypoints_xy: np.ndarray, confidences: np.ndarray, src_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pick keypoints by index along the keypoint axis; index -1 gives an unknown keypoint (NaN, confidence 0)."""
    safe = np.where(src_index < 0, 0, src_index)
    xy = keypoints_xy[..., safe, :].astype(np.float32, copy=True)
    conf = confidences[..., safe].astype(np.float32, copy=True)
    xy[..., src_index < 0, :] = np.nan
    conf[..., src_index < 0] = 0.0
    return xy, conf


_COCO17_FROM_BLAZEPOSE33 = _index_by_name(BLAZEPOSE33, COCO17)
_MPII16_FROM_COCO17 = _index_by_name(COCO17, MPII16)

# MPII joints that a COCO-17 skeleton cannot give: no COCO keypoint marks the thorax, the upper neck or the
# top of the head (COCO has ears and eyes instead). Evaluation of COCO-17 predictions on MPII leaves them out.
MPII16_UNAVAILABLE_FROM_COCO17 = ("thorax", "upper_neck", "head_top")
# MPII joints derived from COCO-17 keypoints rather than taken as they are: pelvis = midpoint of the hips.
MPII16_DERIVED_FROM_COCO17 = ("pelvis",)


def blazepose33_to_coco17(keypoints_xy: np.ndarray, confidences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose-33 (MediaPipe order) → COCO-17 by keypoint name; all 17 COCO keypoints exist in BlazePose.

    keypoints_xy (..., 33, 2), confidences (..., 33) → (..., 17, 2), (..., 17).
    """
    return _gather(keypoints_xy, confidences, _COCO17_FROM_BLAZEPOSE33)


def coco17_to_mpii16(keypoints_xy: np.ndarray, confidences: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 → MPII-16. keypoints_xy (..., 17, 2), confidences (..., 17) → (..., 16, 2), (..., 16).

    Limb joints (ankles, knees, hips, wrists, elbows, shoulders) map one to one. The pelvis is derived: the
    midpoint of the hips with the smaller of their confidences. Thorax, upper neck and head top have no COCO
    counterpart (`MPII16_UNAVAILABLE_FROM_COCO17`): NaN with confidence 0.
    """
    xy, conf = _gather(keypoints_xy, confidences, _MPII16_FROM_COCO17)
    lh, rh = COCO17.index("left_hip"), COCO17.index("right_hip")
    pelvis = MPII16.index("pelvis")
    xy[..., pelvis, :] = 0.5 * (keypoints_xy[..., lh, :] + keypoints_xy[..., rh, :])
    conf[..., pelvis] = np.minimum(confidences[..., lh], confidences[..., rh])
    return xy, conf


_Converter = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CONVERSIONS: dict[tuple[str, str], _Converter] = {
    (COCO17.name, COCO18_OPENPOSE.name): coco17_to_coco18,
    (COCO18_OPENPOSE.name, COCO17.name): coco18_to_coco17,
    (BLAZEPOSE33.name, COCO17.name): blazepose33_to_coco17,
    (COCO17.name, MPII16.name): coco17_to_mpii16,
}


def convert_keypoints(
    keypoints_xy: np.ndarray, confidences: np.ndarray, src: str, dst: str
) -> tuple[np.ndarray, np.ndarray]:
    """Convert keypoints between layouts named `src` and `dst`, through COCO-17 when there is no direct rule.

    keypoints_xy (..., K_src, 2), confidences (..., K_src) → (..., K_dst, 2), (..., K_dst).
    Raises KeyError when no conversion path exists.
    """
    if src == dst:
        return keypoints_xy, confidences
    if (src, dst) in CONVERSIONS:
        return CONVERSIONS[src, dst](keypoints_xy, confidences)
    if (src, COCO17.name) in CONVERSIONS and (COCO17.name, dst) in CONVERSIONS:
        xy, conf = CONVERSIONS[src, COCO17.name](keypoints_xy, confidences)
        return CONVERSIONS[COCO17.name, dst](xy, conf)
    raise KeyError(f"no keypoint conversion from {src!r} to {dst!r}; known: {sorted(CONVERSIONS)}")
