"""Depth → 3D keypoints in pose_node over real DDS: a synthetic depth image with known geometry."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_harness import RosGraph, bgr_frame, stamped
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker

from pose_ros.core.camera import deproject
from pose_ros.ros.image_conversion import array_to_image

K = np.array([[700.0, 0.0, 383.5], [0.0, 700.0, 287.5], [0.0, 0.0, 1.0]])


def camera_info(sec: int, width: int, height: int, k: np.ndarray) -> CameraInfo:
    info = CameraInfo(width=width, height=height, k=k.ravel().tolist())
    info.header.stamp.sec, info.header.stamp.nanosec = sec, 123456789
    return info


def sloped_depth_m(width: int, height: int) -> np.ndarray:
    """A plane tilted along x: depth = 2 m + 1 mm per column (known geometry)."""
    return np.broadcast_to(2.0 + 0.001 * np.arange(width, dtype=np.float32), (height, width)).copy()


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_3d_keypoints_match_known_geometry_within_1cm(vtest_frames, human_models, encoding) -> None:
    with RosGraph() as ros:
        _, probe = ros.start_pose_node()
        depth_pub = probe.create_publisher(Image, "depth_image", 5)
        depth_m = sloped_depth_m(768, 576)
        depth_m[::7, ::5] = np.nan  # holes the median window must ignore
        stored = np.nan_to_num(depth_m * 1000.0).round().astype(np.uint16) if encoding == "16UC1" else depth_m
        depth_msg = stamped(array_to_image(stored, encoding), sec=42)
        depth_pub.publish(depth_msg)
        probe.info_pub.publish(camera_info(42, 768, 576, K))
        time.sleep(0.3)  # let the depth frame and camera info arrive first
        colour = bgr_frame(vtest_frames[1], sec=42)
        out = probe.outputs(probe.send(colour), topics=("people", "markers"))
    people = out["people"].people
    assert len(people) >= 4
    checked = 0
    for person in people:
        assert len(person.keypoints_3d) == len(person.keypoints)
        for kp, p3 in zip(person.keypoints, person.keypoints_3d, strict=True):
            if not np.isfinite(p3.z):
                continue
            u, v = kp.x, kp.y
            truth = deproject(np.array([u, v]), 2.0 + 0.001 * round(u), K)
            assert np.linalg.norm(np.array([p3.x, p3.y, p3.z]) - truth) < 0.01
            checked += 1
    assert checked >= 30
    joints = [m for m in out["markers"].markers if m.ns == "joints" and m.type == Marker.SPHERE_LIST]
    assert any(abs(p.z - 2.0) < 0.8 for m in joints for p in m.points)  # 3D skeleton markers at the depth


def test_all_nan_depth_leaves_3d_unknown_and_the_node_serving(vtest_frames, human_models) -> None:
    with RosGraph() as ros:
        _, probe = ros.start_pose_node()
        depth_pub = probe.create_publisher(Image, "depth_image", 5)
        depth_pub.publish(stamped(array_to_image(np.full((576, 768), np.nan, np.float32), "32FC1"), sec=43))
        time.sleep(0.3)
        colour = bgr_frame(vtest_frames[1], sec=43)
        people = probe.outputs(probe.send(colour), topics=("people",))["people"].people
    assert len(people) >= 4
    for person in people:
        assert len(person.keypoints_3d) == len(person.keypoints)
        assert all(np.isnan(p.z) for p in person.keypoints_3d)
