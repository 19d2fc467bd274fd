"""Depth → 3D keypoints against synthetic depth images of known geometry; stamp matching."""

from __future__ import annotations

import numpy as np
import pytest

from pose_ros.core.camera import project
from pose_ros.core.depth import (
    DepthSettings,
    StampMatcher,
    add_keypoints_3d,
    colour_to_depth_pixels,
    depth_to_metres,
    keypoint_depths,
    keypoints_3d,
)
from pose_ros.core.person import Person, bbox_from_keypoints

WIDTH, HEIGHT = 640, 480
K = np.array([[525.0, 0.0, 319.5], [0.0, 525.0, 239.5], [0.0, 0.0, 1.0]])
TOLERANCE_M = 0.01  # the acceptance bound

# A person's 17 joints (metres, camera optical frame), standing 2-2.6 m away, slightly turned.
JOINTS = np.array(
    [
        [0.00, -0.75, 2.30], [0.03, -0.78, 2.28], [-0.03, -0.78, 2.28], [0.08, -0.76, 2.33], [-0.08, -0.76, 2.33],
        [0.20, -0.50, 2.20], [-0.20, -0.50, 2.40], [0.30, -0.22, 2.10], [-0.30, -0.22, 2.50], [0.32, 0.05, 2.00],
        [-0.32, 0.05, 2.60], [0.12, 0.05, 2.25], [-0.12, 0.05, 2.35], [0.13, 0.45, 2.20], [-0.13, 0.45, 2.40],
        [0.14, 0.85, 2.25], [-0.14, 0.85, 2.35],
    ]
)


def plane_depth(k: np.ndarray, width: int, height: int, normal, offset: float) -> np.ndarray:
    """Depth (H, W) metres of the plane normal · p = offset seen through intrinsics k."""
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u, float)], axis=-1)
    return (offset / (rays @ np.asarray(normal, float))).astype(np.float32)


def joints_depth(k: np.ndarray, width: int, height: int, radius_px: int = 4) -> np.ndarray:
    """Depth (H, W) metres: a wall at 4 m and a small fronto-parallel disc at each joint's depth."""
    depth = np.full((height, width), 4.0, np.float32)
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    for (px, py), z in zip(project(JOINTS, k), JOINTS[:, 2], strict=True):
        depth[(u - px) ** 2 + (v - py) ** 2 <= radius_px**2] = z
    return depth


def as_millimetres(depth_m: np.ndarray) -> np.ndarray:
    return np.rint(np.nan_to_num(depth_m, nan=0.0) * 1000).astype(np.uint16)


def keypoints_of_joints(k=K):
    return project(JOINTS, k).astype(np.float32), np.full(len(JOINTS), 0.9, np.float32)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_joints_recovered_within_1cm(encoding):
    depth = joints_depth(K, WIDTH, HEIGHT)
    raw = as_millimetres(depth) if encoding == "16UC1" else depth
    xy, conf = keypoints_of_joints()
    points = keypoints_3d(depth_to_metres(raw), xy, conf, K)
    assert points.dtype == np.float32 and points.shape == (17, 3)
    assert np.abs(points - JOINTS).max() < TOLERANCE_M


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_tilted_plane_within_1cm(encoding):
    normal = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    depth = plane_depth(K, WIDTH, HEIGHT, normal, 2.5)
    raw = as_millimetres(depth) if encoding == "16UC1" else depth
    xy = np.array([[50.3, 40.8], [319.5, 239.5], [600.0, 420.2], [100.0, 400.0]], np.float32)
    points = keypoints_3d(depth_to_metres(raw), xy, np.ones(4, np.float32), K)
    np.testing.assert_allclose(points @ normal, 2.5, atol=TOLERANCE_M)  # on the plane
    np.testing.assert_allclose(project(points.astype(np.float64), K), xy, atol=0.01)  # along the pixel's ray


def test_depth_image_with_other_resolution_and_intrinsics():
    # Registered depth at half resolution: pixel centres at integers, so cx' = (cx + 0.5) / 2 − 0.5.
    k_half = K / 2
    k_half[:2, 2] = (K[:2, 2] + 0.5) / 2 - 0.5
    k_half[2, 2] = 1.0
    depth = joints_depth(k_half, WIDTH // 2, HEIGHT // 2, radius_px=3)
    xy, conf = keypoints_of_joints(K)
    np.testing.assert_allclose(colour_to_depth_pixels(xy, K, k_half), project(JOINTS, k_half), atol=1e-3)
    points = keypoints_3d(depth_to_metres(as_millimetres(depth)), xy, conf, K, k_half, DepthSettings(window=3))
    assert np.abs(points - JOINTS).max() < TOLERANCE_M
    # Without the depth intrinsics the pixels land elsewhere: the joints read the wall or fall outside.
    wrong = keypoints_3d(depth_to_metres(as_millimetres(depth)), xy, conf, K, None, DepthSettings(window=3))
    assert not (np.abs(wrong - JOINTS).max(axis=1) < 0.1).any()


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_holes_are_ignored(encoding):
    depth = joints_depth(K, WIDTH, HEIGHT, radius_px=6)
    rng = np.random.default_rng(0)
    holes = rng.random(depth.shape) < 0.4
    depth[holes] = 0.0 if encoding == "16UC1" else np.nan
    if encoding == "32FC1":
        depth[rng.random(depth.shape) < 0.05] = np.inf
    raw = as_millimetres(np.where(holes, np.nan, depth)) if encoding == "16UC1" else depth
    xy, conf = keypoints_of_joints()
    points = keypoints_3d(depth_to_metres(raw), xy, conf, K)
    assert np.abs(points - JOINTS).max() < TOLERANCE_M


def test_unknown_depth_is_nan():
    depth = np.full((100, 100), 2.0, np.float32)
    depth[40:60, 40:60] = np.nan  # an all-invalid window around (50, 50)
    depth[10:15, 10:15] = np.nan
    depth[12, 12] = 2.0  # one valid pixel in 25: below min_valid_fraction
    xy = np.array([[50, 50], [12, 12], [80, 80], [80, 80], [np.nan, 5], [-10, 50], [1e30, 50], [99.4, 0.2]], np.float32)
    conf = np.array([0.9, 0.9, 0.9, 0.05, 0.9, 0.9, 0.9, 0.9], np.float32)
    z = keypoint_depths(depth, xy, conf, window=5, min_valid_fraction=0.25, min_confidence=0.1)
    expected = [np.nan, np.nan, 2.0, np.nan, np.nan, np.nan, np.nan, 2.0]  # last: window clipped at the corner
    np.testing.assert_array_equal(z, np.array(expected, np.float32))
    points = keypoints_3d(depth, xy, conf, K)
    assert np.isnan(points[:2]).all() and np.isfinite(points[2]).all()


def test_median_resists_background_at_a_silhouette():
    depth = np.full((50, 50), 5.0, np.float32)
    depth[:, :26] = 2.0  # person on the left, wall on the right; keypoint two pixels from the edge
    z = keypoint_depths(depth, np.array([[24.0, 25.0]]), np.ones(1), window=5)
    assert z[0] == 2.0


def test_depth_to_metres_conventions():
    mm = np.array([[0, 1500], [65535, 1]], np.uint16)
    np.testing.assert_array_equal(depth_to_metres(mm), np.array([[np.nan, 1.5], [65.535, 0.001]], np.float32))
    m = np.array([[np.nan, np.inf], [-np.inf, 0.0], [-1.0, 2.25]], np.float32)
    out = depth_to_metres(m)
    assert out.dtype == np.float32 and np.isnan(out[:2]).all() and np.isnan(out[2, 0]) and out[2, 1] == 2.25
    assert not np.isnan(m[2, 1])  # input untouched
    with pytest.raises(ValueError, match="uint16"):
        depth_to_metres(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="shape"):
        depth_to_metres(np.zeros((2, 2, 1), np.uint16))


def test_add_keypoints_3d_sets_each_person():
    xy, conf = keypoints_of_joints()
    people = [Person(xy, conf, 0.9, bbox_from_keypoints(xy, conf), "coco17")]
    add_keypoints_3d(people, joints_depth(K, WIDTH, HEIGHT), K)
    assert np.abs(people[0].keypoints_3d - JOINTS).max() < TOLERANCE_M


def test_stamp_matcher_tolerance_and_capacity():
    matcher: StampMatcher[str] = StampMatcher(tolerance_s=0.05, capacity=3)
    assert matcher.match(1.0) is None
    for stamp in (1.00, 1.10, 1.20, 1.30):
        matcher.add(stamp, f"depth@{stamp:.2f}")
    assert len(matcher) == 3  # 1.00 dropped
    assert matcher.match(1.12) == (1.10, "depth@1.10")
    assert matcher.match(1.16) == (1.20, "depth@1.20")
    assert matcher.match(1.349) == (1.30, "depth@1.30")
    assert matcher.match(1.36) is None
    assert matcher.match(1.01) is None  # only within tolerance of the dropped frame
    matcher.clear()
    assert matcher.match(1.30) is None
    with pytest.raises(ValueError):
        StampMatcher(tolerance_s=-1.0)


def test_window_median_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 5.0, (40, 60)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.5] = np.nan
    xy = rng.uniform(-3, 62, (200, 2)).astype(np.float32)
    z = keypoint_depths(depth, xy, np.ones(200), window=5, min_valid_fraction=0.2)
    for (x, y), value in zip(xy, z, strict=True):
        col, row = int(np.rint(x)), int(np.rint(y))
        patch = depth[max(row - 2, 0) : max(row + 3, 0), max(col - 2, 0) : max(col + 3, 0)]
        good = patch[np.isfinite(patch)]
        if patch.size and good.size and good.size >= 0.2 * patch.size:
            assert value == pytest.approx(np.median(good), abs=1e-6)
        else:
            assert np.isnan(value)
