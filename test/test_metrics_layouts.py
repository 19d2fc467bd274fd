"""Joint names, OKS constants by name and ignore-region tests (pose_ros.core.metrics, pose_ros.core.annotations)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pose_ros.core import metrics
from pose_ros.core.annotations import canonical_keypoint_name, file_layout
from pose_ros.core.skeletons import COCO17, MPII16


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("left_shoulder", "left_shoulder"),
        ("L Shoulder", "left_shoulder"),
        ("r_ankle", "right_ankle"),
        ("Right-Knee", "right_knee"),
        ("head", "head_top"),  # CrowdPose-14
        ("top_head", "head_top"),  # mmpose's CrowdPose name
        ("head_bottom", "head_bottom"),  # PoseTrack: not the same point as the neck
        ("upper neck", "upper_neck"),
        ("neck", "neck"),
    ],
)
def test_canonical_keypoint_names(name: str, canonical: str) -> None:
    assert canonical_keypoint_name(name) == canonical


def test_sigmas_by_name() -> None:
    np.testing.assert_array_equal(metrics.keypoint_sigmas(COCO17.keypoints), metrics.COCO_KEYPOINT_SIGMAS)
    crowdpose = [*COCO17.keypoints[5:], "head_top", "neck"]
    # CrowdPose's published constants: COCO's limbs, then 0.079 for head and neck.
    expected = [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079]
    np.testing.assert_allclose(metrics.keypoint_sigmas(crowdpose), expected)
    assert np.isfinite(metrics.keypoint_sigmas(MPII16.keypoints)).all()
    assert np.isnan(metrics.keypoint_sigmas(["left_pinky"])).all()


def test_points_in_polygons_agree_with_opencv() -> None:
    rng = np.random.default_rng(0)
    polygons = []
    for _ in range(3):  # star-shaped, so concave polygons are covered
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        radii = rng.uniform(20, 80, 7)
        centre = rng.uniform(100, 300, 2)
        polygons.append(centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1))
    points = rng.uniform(0, 400, (2000, 2))
    inside = metrics.points_in_polygons(points, polygons)
    expected, on_edge = np.zeros(len(points), bool), np.zeros(len(points), bool)
    for poly in polygons:
        contour = poly.astype(np.float32).reshape(-1, 1, 2)
        distance = np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points])
        expected |= distance > 0
        on_edge |= np.abs(distance) < 1e-3  # either answer is fine exactly on an edge
    assert 100 < expected.sum() < 1900 and on_edge.sum() < 5
    np.testing.assert_array_equal(inside[~on_edge], expected[~on_edge])
    assert not metrics.points_in_polygons(points, []).any()


def test_file_layout_bones_from_skeleton_or_names() -> None:
    names = ["L_Shoulder", "R_Shoulder", "L_Elbow", "head"]
    from_skeleton = file_layout(names, [[1, 2], [1, 3]], "file:test")
    assert from_skeleton.keypoints == ("left_shoulder", "right_shoulder", "left_elbow", "head_top")
    assert from_skeleton.limbs == ((0, 1), (0, 2))
    by_name = file_layout(names, None, "file:test")
    assert set(by_name.limbs) == {(0, 1), (0, 2)}  # shoulders and left upper arm, as COCO-17 draws them
