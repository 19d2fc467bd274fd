"""The launch file (checked statically: `launch` is not installable here), the embedded launcher and
image_source, over real DDS."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter
from ros_harness import Probe, RosGraph
from sensor_msgs.msg import CameraInfo, Image

from pose_ros.core.camera import default_camera_matrix, load_camera_calibration
from pose_ros.msg import PersonArray
from pose_ros.ros.image_source import ImageSource
from pose_ros.ros.launcher import LaunchArguments, parse_arguments, start_nodes
from pose_ros.ros.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "pose.launch.py"
CONFIG_FILE = REPO / "config" / "pose.yaml"


def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text())


def test_launch_file_imports_only_launch_apis() -> None:
    modules = set()
    for node in ast.walk(launch_tree()):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    assert modules, "the launch file imports something"
    assert all(m.split(".")[0] in ("launch", "launch_ros") for m in modules), modules
    names = {n.name for n in launch_tree().body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


def launch_arguments() -> dict[str, object]:
    """DeclareLaunchArgument name → default (a literal, or the source text of a substitution)."""
    for node in launch_tree().body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS":
            rows = {}
            for row in node.value.elts:
                name, default = row.elts[0], row.elts[1]
                literal = isinstance(default, ast.Constant)
                rows[name.value] = default.value if literal else ast.unparse(default)
            return rows
    raise AssertionError("no ARGUMENTS table in the launch file")


def test_launch_arguments_match_the_config_file_and_the_embedded_launcher() -> None:
    arguments = launch_arguments()
    config = yaml.safe_load(CONFIG_FILE.read_text())
    pose_params = config["pose_node"]["ros__parameters"]
    assert set(pose_params) == {spec.name for spec in PARAMETERS}, "config/pose.yaml lists every pose_node parameter"
    for spec in PARAMETERS:
        assert pose_params[spec.name] == spec.default, f"{spec.name}: config default differs from the node's"
    for overridden in ("mode", "device"):
        assert overridden in arguments and overridden in pose_params
        assert arguments[overridden] == pose_params[overridden]
    assert {"params_file", "image", "camera_info", "source"} <= set(arguments)
    # The embedded launcher takes the same arguments with the same defaults.
    parsed = parse_arguments([])
    assert (parsed.image, parsed.camera_info, parsed.source) == (arguments["image"], arguments["camera_info"], "")
    assert parsed.params_file.name == "pose.yaml" and "'config', 'pose.yaml'" in arguments["params_file"]
    assert set(config["image_source"]["ros__parameters"]) >= {"source", "rate", "loop", "frame_id", "camera_info_file"}


def test_embedded_launcher_runs_source_and_pose_node_from_the_params_file(demo_data, human_models) -> None:
    """pose_launcher's start_nodes: the params file is applied, remapping works, people come out."""
    context = Context()
    rclpy.init(args=["pose_launcher", "--ros-args", "--params-file", str(CONFIG_FILE)], context=context)
    args = LaunchArguments(
        params_file=CONFIG_FILE,
        image="/cam/image_raw",
        camera_info="/cam/camera_info",
        device="cpu",
        source=str(demo_data / "vtest.avi"),
        source_overrides={"max_frames": 30, "rate": 20.0, "loop": False},
    )
    nodes = start_nodes(args, context=context)
    try:
        assert nodes.pose_node.get_parameter("device").value == "cpu"  # override wins over the file
        assert nodes.pose_node.get_parameter("input_width").value == 512  # from the file
        assert nodes.image_source.frame_id == "camera_optical_frame"
        probe = Probe(context, prefix="")
        received = []
        probe.create_subscription(PersonArray, "/people", received.append, 10)
        nodes.executor.add_node(probe)
        deadline = nodes.pose_node.get_clock().now().nanoseconds + 60e9
        while len(received) < 2 and nodes.pose_node.get_clock().now().nanoseconds < deadline:
            nodes.executor.spin_once(timeout_sec=0.1)
        assert len(received) >= 2
        assert received[0].header.frame_id == "camera_optical_frame"
        assert nodes.pose_node._image_sub.topic_name == "/cam/image_raw"
        assert any(len(msg.people) >= 2 for msg in received)
    finally:
        nodes.shutdown()
        rclpy.try_shutdown(context=context)


def test_image_source_folder_with_calibration_file(tmp_path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index:02d}.png"), np.full((48, 64, 3), index * 40, np.uint8))
    calibration = tmp_path / "camera.yaml"
    calibration.write_text(
        "image_width: 64\nimage_height: 48\ncamera_name: test\n"
        "camera_matrix: {rows: 3, cols: 3, data: [50, 0, 31.5, 0, 51, 23.5, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0.1, 0, 0, 0, 0]}\n"
    )
    assert load_camera_calibration(calibration).camera_matrix[1, 1] == 51
    with RosGraph() as ros:
        source = ImageSource(
            context=ros.context,
            parameter_overrides=[
                Parameter("source", value=str(folder)),
                Parameter("rate", value=50.0),
                Parameter("loop", value=False),
                Parameter("frame_id", value="test_cam"),
                Parameter("camera_info_file", value=str(calibration)),
            ],
        )
        images, infos = [], []
        listener = Probe(ros.context)
        listener.create_subscription(Image, "image", images.append, 10)
        listener.create_subscription(CameraInfo, "camera_info", infos.append, 10)
        ros.add(listener)
        ros.add(source)
        deadline = time.monotonic() + 10
        while (len(images) < 3 or not source.finished) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert source.finished and source.published == 3
    assert [int(i.data[0]) for i in images] == [0, 40, 80]
    assert all(i.header.frame_id == "test_cam" and i.encoding == "bgr8" for i in images)
    assert infos[0].k[0] == 50 and infos[0].d[0] == 0.1 and infos[0].header == images[0].header


def test_default_intrinsics_are_documented_values() -> None:
    k = default_camera_matrix(768, 576)
    assert k[0, 0] == k[1, 1] == 768 and k[0, 2] == 383.5 and k[1, 2] == 287.5
