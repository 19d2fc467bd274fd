"""Guards for pose_node behaviours a planted bug slipped through (issue 22):

- RViz markers use a keypoint's depth-based 3D position when it has one and its viewing ray at `marker_depth`
  otherwise (checked with a marker_depth far from the default and from the depth image);
- a tracker parameter inside its ROS range but invalid for the tracker is rejected with a reason (no exception);
- the estimator cache builds a new estimator when only `top_down_decoder` changes (and not for thresholds).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from ros_harness import RosGraph, bgr_frame, stamped
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, PosePipeline, create_estimator
from pose_ros.core.skeletons import get_layout
from pose_ros.ros.image_conversion import array_to_image
from pose_ros.ros.marker_wire import encode_marker_array
from pose_ros.ros.messages import people_to_markers

K = np.array([[700.0, 0.0, 383.5], [0.0, 700.0, 287.5], [0.0, 0.0, 1.0]])
MARKER_DEPTH_M = 5.0  # far from the default (2 m) and from the depth image (2.0 .. 2.4 m)


def ray_at(u: float, v: float, z: float) -> list[float]:
    """The point at depth z on the viewing ray of pixel (u, v) of camera K, by hand."""
    return [(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z]


def test_markers_take_3d_keypoints_and_fall_back_to_the_ray_at_marker_depth() -> None:
    xy = np.array([[400.0, 300.0], [383.5, 287.5], [100.0, 50.0], [600.0, 500.0], [10.0, 10.0]], np.float32)
    xy = np.concatenate([xy, np.tile(xy[-1:], (12, 1))])  # 17 COCO keypoints; 5..16 below the threshold
    conf = np.array([0.9, 0.9, 0.9, 0.9] + [0.1] * 13, np.float32)
    k3d = np.full((17, 3), np.nan, np.float32)
    k3d[0] = (0.05, 0.03, 2.2)  # keypoint 0 has depth; 1..3 do not
    k3d[2] = (np.nan, 1.0, 2.0)  # a partial 3D point counts as unknown
    person = Person(xy, conf, 0.9, np.array([10, 10, 590, 490], np.float32), "coco17", id=7, keypoints_3d=k3d)
    wire = encode_marker_array(people_to_markers([person], Header(frame_id="cam"), K, keypoint_threshold=0.3,
                                                 marker_depth=MARKER_DEPTH_M))
    markers = deserialize_message(wire, MarkerArray).markers  # as RViz receives them
    joints = next(m for m in markers if m.ns == "joints")
    assert joints.id == 7 and joints.header.frame_id == "cam"
    got = [[p.x, p.y, p.z] for p in joints.points]
    expected = [[0.05, 0.03, 2.2], ray_at(383.5, 287.5, 5.0), ray_at(100.0, 50.0, 5.0), ray_at(600.0, 500.0, 5.0)]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    skeleton = next(m for m in markers if m.ns == "skeleton")
    drawn = [(a, b) for a, b in get_layout("coco17").limbs if a < 4 and b < 4]  # both ends above the threshold
    assert len(drawn) >= 3
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in skeleton.points],
                               [expected[k] for limb in drawn for k in limb], atol=1e-6)


# ----- over DDS --------------------------------------------------------------------------------------------------
def camera_info(sec: int, width: int, height: int) -> CameraInfo:
    info = CameraInfo(width=width, height=height, k=K.ravel().tolist())
    info.header.stamp.sec, info.header.stamp.nanosec = sec, 123456789
    return info


@pytest.fixture(scope="module")
def graph(human_models):
    with RosGraph() as ros:
        node, probe = ros.start_pose_node(
            Parameter("marker_depth", value=MARKER_DEPTH_M), Parameter("keypoint_threshold", value=0.3),
            Parameter("publish_overlay", value=False), Parameter("backend", value="torch"),
        )
        yield ros, node, probe


def test_node_markers_use_depth_where_known_and_marker_depth_elsewhere(graph, vtest_frames) -> None:
    _, _, probe = graph
    depth_pub = probe.create_publisher(Image, "depth_image", 5)
    depth_m = np.broadcast_to(2.0 + 0.0005 * np.arange(768, dtype=np.float32), (576, 768)).copy()
    depth_m[:, 384:] = np.nan  # no depth in the right half: those keypoints fall back to marker_depth
    depth_pub.publish(stamped(array_to_image(depth_m, "32FC1"), sec=42))
    probe.info_pub.publish(camera_info(42, 768, 576))
    time.sleep(0.3)  # let the depth frame and camera info arrive first
    out = probe.outputs(probe.send(bgr_frame(vtest_frames[1], sec=42)), topics=("people", "markers"))
    joints = {m.id: m for m in out["markers"].markers if m.ns == "joints" and m.type == Marker.SPHERE_LIST}
    with_depth = fallback = 0
    for person in out["people"].people:
        expected = []
        for kp, p3 in zip(person.keypoints, person.keypoints_3d, strict=True):
            if kp.confidence < 0.3:
                continue
            if np.isfinite([p3.x, p3.y, p3.z]).all():
                expected.append([p3.x, p3.y, p3.z])
                assert 2.0 <= p3.z <= 2.4
                with_depth += 1
            else:
                expected.append(ray_at(kp.x, kp.y, MARKER_DEPTH_M))
                fallback += 1
        got = [[p.x, p.y, p.z] for p in joints[person.id].points]
        np.testing.assert_allclose(got, expected, atol=1e-4)
    assert with_depth >= 10 and fallback >= 10, (with_depth, fallback)


def test_tracker_value_in_ros_range_but_invalid_is_rejected_with_a_reason(graph) -> None:
    _, node, _ = graph
    settings = node._settings  # the snapshot the next frame takes (tracker settings included)
    rejected_before = node.counters["rejected_parameter"]
    result = node.set_parameters([Parameter("tracking_match_threshold", value=0.0)])[0]  # ROS range [0, 1]
    assert not result.successful
    assert "match_threshold" in result.reason and "(0, 1]" in result.reason
    assert node.get_parameter("tracking_match_threshold").value == pytest.approx(0.3)
    assert node._settings is settings and node.counters["rejected_parameter"] == rejected_before + 1
    accepted = node.set_parameters([Parameter("tracking_match_threshold", value=0.4)])[0]
    assert accepted.successful and node._settings.tracker.match_threshold == pytest.approx(0.4)
    assert node.set_parameters([Parameter("tracking_match_threshold", value=0.3)])[0].successful


# ----- estimator cache -------------------------------------------------------------------------------------------
def test_cache_builds_a_new_estimator_when_only_the_top_down_decoder_changes(human_models, vtest_frames) -> None:
    built: list[PipelineConfig] = []

    def factory(config: PipelineConfig):
        built.append(config)
        return create_estimator(config)

    pipeline = PosePipeline(factory)
    regression = PipelineConfig(mode="top_down", device="cpu", backend="torch", top_down_decoder="regression")
    heatmap = PipelineConfig(mode="top_down", device="cpu", backend="torch", top_down_decoder="heatmap")
    first = pipeline.estimator(regression)
    second = pipeline.estimator(heatmap)
    assert second is not first and [c.top_down_decoder for c in built] == ["regression", "heatmap"]
    assert first.settings.decoder == "regression" and second.settings.decoder == "heatmap"
    frame = vtest_frames[1]
    a, b = pipeline(regression, frame), pipeline(heatmap, frame)
    assert len(a) >= 3 and len(a) == len(b)
    differences = [np.nanmax(np.abs(p.keypoints_xy - q.keypoints_xy)) for p, q in zip(a, b, strict=True)]
    assert max(differences) > 0.5, "the two decoders gave the same keypoints: the cache returned one estimator"
    # Thresholds and the bottom-up fields do not change the top-down networks: no rebuild.
    assert pipeline.estimator(PipelineConfig(mode="top_down", device="cpu", backend="torch",
                                             top_down_decoder="heatmap", detector_threshold=0.6,
                                             score_threshold=0.5, input_width=256)) is second
    assert len(built) == 2
