"""pose_launcher: the embedded equivalent of launch/pose.launch.py, for machines without `ros2 launch`.

Starts pose_node (and image_source when a source is given) in one process, with the same parameters
file and the same arguments as the launch file:

    ros2 run pose_ros pose_launcher --source ~/.cache/pose_ros/opencv-doc/vtest.avi --device cpu
    ros2 run pose_ros pose_launcher --image /camera/image_raw --params-file my_pose.yaml
    ros2 run pose_ros pose_launcher --image /camera/image_raw --image-transport compressed
    ros2 run pose_ros pose_launcher --source vtest.avi --viewer   # + the browser view, http://localhost:8090

An option left out changes nothing: the parameters file decides (as with the launch file's arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from pose_ros.ros import shutdown
from pose_ros.ros.image_source import ImageSource
from pose_ros.ros.pose_node import PoseNode, activate, node_executor


def default_params_file() -> Path:
    """config/pose.yaml from the install space (share/pose_ros), else from the source checkout."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "pose_ros" / "config" / "pose.yaml"
        if prefix and candidate.is_file():
            return candidate
    return Path(__file__).resolve().parents[2] / "config" / "pose.yaml"


@dataclass
class LaunchArguments:
    """The launch file's arguments (same names, same meaning): None leaves the parameters file's value alone."""

    params_file: Path
    image: str = "image"
    camera_info: str = "camera_info"
    mode: str | None = None
    device: str | None = None
    source: str = ""
    source_overrides: dict[str, object] = field(default_factory=dict)  # extra image_source parameters
    image_transport: str | None = None  # raw | compressed
    viewer: bool = False  # also start pose_viewer (its parameters from the file's pose_viewer section)


def parse_arguments(argv: list[str]) -> LaunchArguments:
    parser = argparse.ArgumentParser(prog="pose_launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params-file", type=Path, default=default_params_file(), help="parameters YAML")
    parser.add_argument("--image", default="image", help="input image topic")
    parser.add_argument("--camera-info", default="camera_info", help="camera info topic")
    parser.add_argument("--mode", choices=("bottom_up", "top_down"), help="override pose_node mode")
    parser.add_argument("--device", help="override pose_node device (auto, cpu, cuda, cuda:N)")
    parser.add_argument(
        "--image-transport", choices=("raw", "compressed"), help="override pose_node image_transport (raw, compressed)"
    )
    parser.add_argument(
        "--source", default="", help="start image_source on this video, folder, /dev/videoN or camera index"
    )
    parser.add_argument("--viewer", action="store_true", help="also start pose_viewer (browser view of the results)")
    args = parser.parse_args(argv)
    return LaunchArguments(
        args.params_file, args.image, args.camera_info, args.mode, args.device, args.source,
        image_transport=args.image_transport, viewer=args.viewer,
    )


@dataclass
class LaunchedNodes:
    """Nodes started by `start_nodes`, spinning in `executor` (call `executor.spin()` or spin_once)."""

    pose_node: PoseNode
    image_source: ImageSource | None
    executor: MultiThreadedExecutor
    viewer: rclpy.node.Node | None = None  # pose_viewer, when started

    def shutdown(self, extra_nodes: tuple = (), close: tuple = ()) -> None:
        """Stop cleanly (pose_ros.ros.shutdown.stop_nodes): callbacks in flight finish, `close` runs, then the
        source is released and every node (these and `extra_nodes` spinning in the same executor) destroyed."""
        source_close = (self.image_source.source.close,) if self.image_source is not None else ()
        nodes = (self.pose_node, self.image_source, self.viewer, *extra_nodes)
        shutdown.stop_nodes(self.executor, nodes, (*close, *source_close))


def start_nodes(args: LaunchArguments, context: rclpy.context.Context | None = None) -> LaunchedNodes:
    """Create, configure and activate the nodes of the launch file; rclpy must be initialised with
    `--ros-args --params-file args.params_file` (see `ros_arguments`)."""
    remaps = ["--ros-args", "-r", f"image:={args.image}", "-r", f"camera_info:={args.camera_info}"]
    chosen = (("mode", args.mode), ("device", args.device), ("image_transport", args.image_transport))
    overrides = [Parameter(name, value=value) for name, value in chosen if value]
    pose_node = PoseNode(cli_args=remaps, parameter_overrides=overrides, context=context)
    if pose_node.get_parameter("auto_activate").value:
        activate(pose_node)
    image_source = None
    if args.source:
        source_parameters = {"source": args.source, **args.source_overrides}
        image_source = ImageSource(
            cli_args=remaps,
            parameter_overrides=[Parameter(name, value=value) for name, value in source_parameters.items()],
            context=context,
        )
    viewer = None
    if args.viewer:
        from pose_ros.ros.viewer import PortInUseError, PoseViewer  # viser only loads when the viewer is asked for

        try:
            viewer = PoseViewer(cli_args=remaps, context=context)
        except PortInUseError as error:  # pose_node runs on without its viewer
            pose_node.get_logger().error(f"pose_viewer not started: {error}")
    executor = node_executor(context)  # services answered while a parameter set loads a model
    for node in (pose_node, image_source, viewer):
        if node is not None:
            executor.add_node(node)
    return LaunchedNodes(pose_node, image_source, executor, viewer)


def ros_arguments(args: LaunchArguments) -> list[str]:
    """rclpy.init arguments that load the parameters file for every node, as the launch file does."""
    if not args.params_file.is_file():
        raise FileNotFoundError(f"parameters file not found: {args.params_file}")
    return ["pose_launcher", "--ros-args", "--params-file", str(args.params_file)]


def main(argv: list[str] | None = None) -> int:
    """Run the nodes until SIGINT or SIGTERM, then stop cleanly (pose_ros.ros.shutdown) and return 0."""
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        shutdown.init(ros_arguments(args))
    except FileNotFoundError as error:
        print(f"pose_launcher: {error}", file=sys.stderr)
        return 2
    nodes = None
    try:
        nodes = start_nodes(args)
        shutdown.spin_until_stopped(nodes.executor)
    finally:
        if nodes is not None:
            nodes.shutdown()
        shutdown.finish()
    return 0
