"""pose_node over real DDS: real frames in, people/markers/overlay out, headers copied, parameters checked."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from ros_harness import CPU_NO_MESH, RELIABLE, Probe, RosGraph, bgr_frame, stamped
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker

import pose_ros.ros.pose_node as pose_node_module
from pose_ros.core.draw import draw_people
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.skeletons import COCO17
from pose_ros.core.sources import read_video_frames
from pose_ros.msg import PersonArray
from pose_ros.ros.image_conversion import array_to_image, image_to_array
from pose_ros.ros.pose_node import PoseNode, activate

KEYPOINT_THRESHOLD = 0.3


@pytest.fixture(scope="module")
def graph(human_models):
    """pose_node (reliable image QoS, CPU) and a probe, spinning for the whole module."""
    with RosGraph() as ros:
        node, probe = ros.start_pose_node(Parameter("keypoint_threshold", value=KEYPOINT_THRESHOLD))
        yield ros, node, probe


def test_vtest_frame_people_match_the_estimator_run_directly(graph, vtest_frames) -> None:
    """The node publishes exactly what the core pipeline finds on the same frame (which the tfjs test pins)."""
    _, _node, probe = graph
    frame = vtest_frames[1]  # frame 100: several walkers
    direct = PosePipeline()(PipelineConfig(device="cpu"), frame)
    assert len(direct) >= 4, "the vtest.avi walkers are expected at 512x384"

    key = probe.send(bgr_frame(frame, sec=100))
    out = probe.outputs(key)
    people_msg = out["people"]

    assert people_msg.header.stamp.sec == 100 and people_msg.header.stamp.nanosec == 123456789
    assert people_msg.header.frame_id == "camera_optical_frame"
    assert (people_msg.image_width, people_msg.image_height) == (768, 576)
    assert people_msg.mode == "bottom_up" and people_msg.model == "movenet_multipose"
    assert len(people_msg.people) == len(direct)
    for sent, expected in zip(people_msg.people, direct, strict=True):
        assert sent.layout == "coco17" and len(sent.keypoints) == COCO17.num_keypoints
        xy = np.array([[k.x, k.y] for k in sent.keypoints])
        np.testing.assert_allclose(xy, expected.keypoints_xy, atol=1e-3)
        np.testing.assert_allclose(sent.bbox, expected.bbox_xywh, atol=1e-3)
        assert sent.score == pytest.approx(expected.score, abs=1e-6)
        assert [k.visible for k in sent.keypoints] == [c >= KEYPOINT_THRESHOLD for c in expected.confidences]
        assert sent.tracked  # tracking is on by default: ids are track ids
    assert len({p.id for p in people_msg.people}) == len(direct)


def test_track_ids_are_stable_over_consecutive_frames(graph, demo_data) -> None:
    """Walkers in consecutive vtest.avi frames keep their ids (the tracker in the node)."""
    _, _, probe = graph
    frames = read_video_frames(demo_data / "vtest.avi", list(range(200, 206)))
    ids_per_frame = []
    for index, frame in enumerate(frames):
        key = probe.send(bgr_frame(frame, sec=500 + index))
        ids_per_frame.append({p.id for p in probe.outputs(key, topics=("people",))["people"].people})
    kept = [len(a & b) / max(len(a), 1) for a, b in itertools.pairwise(ids_per_frame)]
    assert min(len(ids) for ids in ids_per_frame) >= 3
    assert np.mean(kept) >= 0.8, ids_per_frame


def test_diagnostics_report_real_numbers(graph, vtest_frames) -> None:
    _, _node, probe = graph
    received = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    probe.outputs(probe.send(bgr_frame(vtest_frames[0], sec=900)), topics=("people",))
    count = len(received)  # any published while the frame was processed (a cold start takes seconds) predate it
    deadline = time.monotonic() + 5
    while len(received) <= count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(received) > count, "/diagnostics is published at 1 Hz"
    status = received[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.name.startswith("pose_node")
    assert int(values["frames_processed"]) >= 1 and int(values["frames_received"]) >= 1
    assert float(values["latency_p50_ms"]) > 0
    assert values["model"] == "bottom_up/movenet_multipose" and values["device"] == "cpu"
    stages = {k.removeprefix("stage_").removesuffix("_p50_ms"): float(v) for k, v in values.items()
              if k.startswith("stage_")}  # fmt: skip
    assert list(stages) == ["decode", "estimate", "track", "depth", "mesh", "publish"]  # the frame path, in order
    assert all(ms >= 0 for ms in stages.values()) and stages["estimate"] > 0
    assert stages["estimate"] == max(stages.values())  # the network, not the bookkeeping around it


def test_the_next_frame_does_not_wait_for_a_frames_markers_and_overlay(graph, vtest_frames, monkeypatch) -> None:
    """Markers and overlay are built beside the frame path, for the newest frame only: with drawing made slow, the
    next frames' people come out before the first frame's overlay (a frame path that drew them itself would wait
    for it), and of the two frames that came meanwhile only the newer one gets its overlay."""
    _, node, probe = graph
    arrivals: list[tuple[str, int]] = []
    subscriptions = [
        probe.create_subscription(msg_type, topic, lambda m, t=topic: arrivals.append((t, m.header.stamp.sec)),
                                  RELIABLE)
        for topic, msg_type in (("people", PersonArray), ("overlay", Image))
    ]
    time.sleep(1.0)  # matched
    monkeypatch.setattr(pose_node_module, "draw_people", lambda *a, **k: (time.sleep(3.0), draw_people(*a, **k))[1])
    skipped_before = node._visuals.dropped
    try:
        first = probe.send(bgr_frame(vtest_frames[0], sec=1000))
        probe.outputs(first, topics=("people",))
        for sec in (1001, 1002):  # while the first overlay is drawn
            last = probe.send(bgr_frame(vtest_frames[sec - 1000], sec=sec))
            probe.outputs(last, topics=("people",))
        probe.outputs(last, topics=("overlay",))  # the last overlay comes last
    finally:
        for subscription in subscriptions:
            probe.destroy_subscription(subscription)
    order = [event for event in arrivals if event[1] in (1000, 1001, 1002)]
    assert order == [("people", 1000), ("people", 1001), ("people", 1002), ("overlay", 1000), ("overlay", 1002)], order
    assert node._visuals.dropped == skipped_before + 1  # frame 1001's (frames_visuals_skipped in /diagnostics)
    assert node.statistics.visuals_medians() is not None  # their time, for /diagnostics (visuals_p50_ms)


def test_markers_and_overlay_are_consistent_with_people(graph, vtest_frames) -> None:
    _, _, probe = graph
    key = probe.send(bgr_frame(vtest_frames[2], sec=300))
    out = probe.outputs(key)
    people, markers, overlay = out["people"].people, out["markers"].markers, out["overlay"]

    assert markers[0].action == Marker.DELETEALL
    for marker in markers:
        assert marker.header.stamp.sec == 300 and marker.header.frame_id == "camera_optical_frame"
    skeletons = {m.id: m for m in markers if m.ns == "skeleton"}
    joints = {m.id: m for m in markers if m.ns == "joints"}
    assert set(skeletons) == set(joints) == {p.id for p in people}
    for person in people:
        visible = [k.visible for k in person.keypoints]
        assert len(joints[person.id].points) == sum(visible)
        assert joints[person.id].type == Marker.SPHERE_LIST and skeletons[person.id].type == Marker.LINE_LIST
        drawn_limbs = sum(visible[a] and visible[b] for a, b in COCO17.limbs)
        assert len(skeletons[person.id].points) == 2 * drawn_limbs

    assert overlay.header == out["people"].header
    assert (overlay.width, overlay.height, overlay.encoding) == (768, 576, "rgb8")
    drawn = image_to_array(overlay)
    changed = np.any(drawn != vtest_frames[2], axis=2)
    for person in people:  # every person's box region has drawing in it
        x, y, w, h = (round(v) for v in person.bbox)
        assert changed[max(y, 0) : y + h + 1, max(x, 0) : x + w + 1].any()


def test_best_effort_subscription_and_empty_scene(human_models) -> None:
    """Default QoS (best effort, keep last 1); an image with nobody gives an empty PersonArray, not silence."""
    with RosGraph() as ros:
        node = ros.add(PoseNode(context=ros.context, parameter_overrides=[*CPU_NO_MESH]))
        assert activate(node)
        probe = ros.add(Probe(ros.context, image_qos=QoSProfile(depth=1, reliability=QoSReliabilityPolicy.BEST_EFFORT)))
        probe.wait_for_subscriber()
        blank = stamped(array_to_image(np.full((240, 320), 128, np.uint8), "mono8"), sec=7)
        for attempt in range(20):  # best effort: resend until matched
            key = probe.send(blank)
            try:
                out = probe.outputs(key, topics=("people",), timeout=2.0)
                break
            except TimeoutError:
                if attempt == 19:
                    raise
        assert out["people"].people == [] and out["people"].image_width == 320


def test_invalid_parameters_are_rejected_with_a_reason(graph) -> None:
    _, node, _ = graph
    cases = {
        "mode": "sideways",
        "device": "tpu",
        "backend": "tensorrt",
        "input_width": 500,  # not a multiple of 32 from 128
        "score_threshold": 1.5,
        "max_people": 0,
    }
    for name, value in cases.items():
        before = node.get_parameter(name).value
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful, name
        assert result.reason, name
        assert node.get_parameter(name).value == before
    result = node.set_parameters([Parameter("mode", value="sideways")])[0]
    assert not result.successful and "bottom_up, top_down" in result.reason, "the reason lists the valid modes"


def test_parameters_have_descriptions_and_ranges(graph) -> None:
    _, node, _ = graph
    for name in ("mode", "device", "input_width", "score_threshold", "max_people", "keypoint_threshold"):
        descriptor = node.describe_parameter(name)
        assert descriptor.description, name
    assert node.describe_parameter("input_width").integer_range[0].step == 32
    assert node.describe_parameter("score_threshold").floating_point_range[0].to_value == 1.0

