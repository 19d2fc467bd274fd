"""Bad input over real DDS: each bad frame is logged clearly (rate-limited), counted, and the node keeps serving."""

from __future__ import annotations

import array
import shutil
import time

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from ros_harness import CPU_NO_MESH, RELIABLE, RosGraph, bgr_frame, stamped
from sensor_msgs.msg import Image

from pose_ros.core import assets
from pose_ros.ros.image_conversion import array_to_image
from pose_ros.ros.pose_node import PoseNode


@pytest.fixture(scope="module")
def graph(human_models):
    with RosGraph() as ros:
        yield ros.start_pose_node()


def good_frame(sec: int, vtest_frames) -> Image:
    return bgr_frame(vtest_frames[1], sec)


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def unknown_encoding(msg: Image) -> None:
    msg.encoding = "weird16"


def step_mismatch(msg: Image) -> None:
    msg.step = msg.width  # a bgr8 row needs 3 * width bytes


def empty_image(msg: Image) -> None:
    msg.width = msg.height = msg.step = 0
    msg.data = array.array("B")


def truncated(msg: Image) -> None:
    msg.data = msg.data[: len(msg.data) // 3]


@pytest.mark.parametrize(
    ("corrupt", "kind", "words"),
    [
        (unknown_encoding, "bad_image", "unsupported encoding 'weird16'"),
        (step_mismatch, "bad_image", "step"),
        (empty_image, "bad_image", "empty image"),
        (truncated, "bad_image", "truncated image data"),
    ],
)
def test_bad_frame_is_counted_logged_once_and_the_next_good_frame_served(graph, vtest_frames, corrupt, kind, words):
    node, probe = graph
    counted_before, logged_before = node.counters[kind], node.errors_logged[kind]
    node._last_error_log.pop(kind, None)  # start a fresh rate-limit period for this case
    for repeat in range(3):  # one at a time: the image queue keeps only the newest frame
        bad = good_frame(1000 + repeat, vtest_frames)
        corrupt(bad)
        probe.send(bad)
        wait_until(lambda r=repeat: node.counters[kind] == counted_before + r + 1)
    key = probe.send(good_frame(2000 + node.counters[kind], vtest_frames))
    out = probe.outputs(key, topics=("people",))
    assert len(out["people"].people) >= 4, "the node keeps serving good frames"
    assert node.counters[kind] == counted_before + 3, "every bad frame is counted"
    assert node.errors_logged[kind] == logged_before + 1, "logged once per period, not once per frame"
    assert words in node.last_error[kind]
    assert not probe.received["people"].get((1000, 123456789)), "no output for a bad frame"


def test_8k_frame_is_processed(graph) -> None:
    """A 7680x4320 frame is decoded and processed (letterboxed into the network input), not dropped."""
    _, probe = graph
    frame = np.full((4320, 7680), 90, np.uint8)
    frame[1000:3500, 3000:3600] = 20  # something dark in it; nobody expected
    key = probe.send(stamped(array_to_image(frame, "mono8"), 8000))
    out = probe.outputs(key, timeout=60.0)
    assert (out["people"].image_width, out["people"].image_height) == (7680, 4320)
    assert out["overlay"].width == 7680


def test_invalid_parameter_values_are_rejected_and_serving_continues(graph, vtest_frames) -> None:
    node, probe = graph
    for name, value in {"mode": "sideways", "device": "cuda:7", "backend": "tensorrt", "max_people": 1000}.items():
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and result.reason, name
    key = probe.send(good_frame(3000, vtest_frames))
    assert len(probe.outputs(key, topics=("people",))["people"].people) >= 4


def test_missing_openpose_weights_are_rejected_with_the_file_named(graph, tmp_path) -> None:
    node, _ = graph
    missing = tmp_path / "body_pose_model.pth"
    result = node.set_parameters_atomically(
        [Parameter("bottom_up_model", value="openpose"), Parameter("openpose_weights", value=str(missing))]
    )
    assert not result.successful
    assert str(missing) in node.last_error["rejected_parameter"]
    assert node.get_parameter("bottom_up_model").value == "movenet_multipose"


def test_corrupt_default_weights_fail_configuration_clearly_without_killing_the_node(monkeypatch, tmp_path):
    models = tmp_path / "models" / f"human-models-{assets.HUMAN_MODELS_VERSION}"
    models.mkdir(parents=True)
    shutil.copy(assets.human_models_dir() / "movenet-multipose.json", models)
    (models / "movenet-multipose.bin").write_bytes(b"\x00" * 1000)  # truncated weights
    monkeypatch.setenv("POSE_ROS_CACHE", str(tmp_path))
    with RosGraph() as ros:
        node = ros.add(PoseNode(context=ros.context, parameter_overrides=[*CPU_NO_MESH]))
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert "movenet-multipose.bin" in node.last_error["model_load"]
        time.sleep(0.2)
        assert node.get_parameter("mode").value == "bottom_up"  # alive and answering


def test_camera_publisher_killed_and_restarted(graph, vtest_frames) -> None:
    """A new publisher on the image topic (a restarted camera driver) is served without any action."""
    _, probe = graph
    probe.destroy_publisher(probe.image_pub)
    time.sleep(0.5)
    probe.image_pub = probe.create_publisher(Image, "image", RELIABLE)
    probe.wait_for_subscriber()
    for attempt in range(10):  # the new publisher may need a moment to be matched
        try:
            out = probe.outputs(probe.send(good_frame(4000 + attempt, vtest_frames)), topics=("people",), timeout=3)
            break
        except TimeoutError:
            continue
    else:
        raise AssertionError("no people message within 10 frames after the camera publisher was restarted")
    assert len(out["people"].people) >= 4


@pytest.mark.parametrize(
    ("module", "name", "value", "words"),
    [
        ("pose_ros.ros.pose_node", "mesh_rate_hz", "2", "a floating-point number (write 2.0, not 2)"),
        ("pose_ros.ros.pose_node", "tracking", "2", "true or false"),
        ("pose_ros.ros.viewer", "port", "8090.0", "an integer"),
    ],
)
def test_a_parameter_of_the_wrong_type_is_a_clear_error_not_a_traceback(module, name, value, words) -> None:
    """`--ros-args -p mesh_rate_hz:=2` (an integer for a double) is what newcomers type first: the process says which
    parameter takes which type and exits 2, before loading any model."""
    import subprocess

    from stop_harness import run_module

    command = [*run_module(module), "--ros-args", "-p", f"{name}:={value}", "-p", "auto_activate:=false"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"parameter {name} takes {words}" in result.stderr
    assert "Traceback" not in result.stderr
