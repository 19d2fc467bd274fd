"""Live mode switch over real DDS: `mode` set at run time takes effect on the next frame, the image
subscription stays the same object, invalid values are rejected with a reason, and switching back reuses the
cached estimator (no reload)."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import Probe, RosGraph, stamped

from pose_ros.core.estimators.top_down import TopDownEstimator
from pose_ros.ros.image_conversion import array_to_image
from pose_ros.ros.pose_node import PoseNode, activate


def send_frame(probe: Probe, frame_rgb: np.ndarray, sec: int):
    key = probe.send(stamped(array_to_image(np.ascontiguousarray(frame_rgb), "rgb8"), sec))
    return probe.outputs(key, topics=("people",), timeout=120.0)["people"]


@pytest.fixture(scope="module")
def graph(human_models):
    with RosGraph() as ros:
        node = PoseNode(
            context=ros.context,
            parameter_overrides=[
                Parameter("image_reliability", value="reliable"),
                Parameter("device", value="cpu"),
                Parameter("mesh_model", value="none"),
                Parameter("tracking", value=False),
                Parameter("publish_overlay", value=False),
                Parameter("backend", value="torch"),  # no ONNX export in this test
            ],
        )
        assert activate(node)
        ros.add(node)
        probe = ros.add(Probe(ros.context))
        probe.wait_for_subscriber()
        yield ros, node, probe


def test_mode_switches_live_and_back_without_reloading(graph, demo_data) -> None:
    import cv2

    _, node, probe = graph
    frame = cv2.cvtColor(cv2.imread(str(demo_data / "basketball1.png")), cv2.COLOR_BGR2RGB)
    subscription = node._image_sub
    pipeline = node._pipeline

    before = send_frame(probe, frame, sec=1)
    assert before.mode == "bottom_up" and before.model == "movenet_multipose"
    assert pipeline.num_loaded == 1

    result = node.set_parameters([Parameter("mode", value="top_down")])[0]
    assert result.successful, result.reason
    assert pipeline.num_loaded == 2, "the top-down models were built (and checked) when the change was accepted"
    top_down = send_frame(probe, frame, sec=2)
    assert top_down.mode == "top_down" and top_down.model == "centernet+movenet_thunder"
    assert len(top_down.people) == 2, "both basketball players"
    estimator = pipeline.estimator(node.settings.pipeline)
    assert isinstance(estimator, TopDownEstimator)
    direct = pipeline(node.settings.pipeline, frame)
    for sent, expected in zip(top_down.people, direct, strict=True):
        np.testing.assert_allclose([[k.x, k.y] for k in sent.keypoints], expected.keypoints_xy, atol=1e-3)

    result = node.set_parameters([Parameter("mode", value="upside_down")])[0]
    assert not result.successful and "mode" in result.reason and "top_down" in result.reason
    assert node.get_parameter("mode").value == "top_down"
    assert send_frame(probe, frame, sec=3).mode == "top_down", "a rejected change changes nothing"

    assert node.set_parameters([Parameter("mode", value="bottom_up")])[0].successful
    after = send_frame(probe, frame, sec=4)
    assert after.mode == "bottom_up" and after.model == "movenet_multipose"
    assert len(after.people) == len(before.people)
    for a, b in zip(after.people, before.people, strict=True):
        np.testing.assert_allclose([[k.x, k.y] for k in a.keypoints], [[k.x, k.y] for k in b.keypoints], atol=1e-3)

    assert node.set_parameters([Parameter("mode", value="top_down")])[0].successful
    assert send_frame(probe, frame, sec=5).mode == "top_down"
    assert pipeline.num_loaded == 2, "switching back and forth reuses the cached estimators"
    assert pipeline.estimator(node.settings.pipeline) is estimator
    assert node._image_sub is subscription, "the image subscription was never recreated"
    assert node.counters["rejected_parameter"] >= 1
