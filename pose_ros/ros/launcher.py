"""pose_launcher: the embedded equivalent of launch/pose.launch.py, for machines without `ros2 launch`.

Starts pose_node (and image_source when a source is given) in one process, with the same parameters
file and the same arguments as the launch file:

    ros2 run pose_ros pose_launcher --source ~/.cache/pose_ros/opencv-doc/vtest.avi --device cpu
    ros2 run pose_ros pose_launcher --image /camera/image_raw --params-file my_pose.yaml
    ros2 run pose_ros pose_launcher --image /camera/image_raw --image-transport compressed
    ros2 run pose_ros pose_launcher --source vtest.avi --viewer   # + the browser view, http://localhost:8090
    ros2 run pose_ros pose_launcher --cameras front,back        # /front/image → /front/people, /back/image → ...
    ros2 run pose_ros pose_launcher --cameras front,back --source vtest.avi,frames/   # one source per camera

An option left out changes nothing: the parameters file decides (as with the launch file's arguments).
With --cameras, one pose_node per camera runs under the camera's namespace (its parameters: the file's shared
`/**/pose_node` section, then its own `/<camera>/pose_node` section), and the cameras share one copy of each
loaded model (pose_ros.core.model_cache).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.parameter import Parameter

from pose_ros.core.model_cache import ModelCache
from pose_ros.ros import shutdown
from pose_ros.ros.executor import SpinSafeExecutor
from pose_ros.ros.image_source import ImageSource
from pose_ros.ros.parameters import ParameterTypeError
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
    cameras: tuple[str, ...] = ()  # camera namespaces, one pose pipeline each; () = one, in the root namespace
    share_models: bool = True  # cameras share loaded models (False: each loads its own; for comparisons)


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
    parser.add_argument(
        "--cameras", default="",
        help="camera namespaces, e.g. front,back: one pose_node per camera under its namespace, models shared "
        "(--source then takes one source per camera, comma-separated, or one for all)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        cameras = camera_namespaces(args.cameras)
        check_cameras(cameras, args.source, args.image, args.camera_info)
    except ValueError as error:
        parser.error(str(error))
    return LaunchArguments(
        args.params_file, args.image, args.camera_info, args.mode, args.device, args.source,
        image_transport=args.image_transport, viewer=args.viewer, cameras=cameras,
    )


NAMESPACE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_list(text: str) -> list[str]:
    """`[front,back]`, `front,back` or `['front', 'back']` → ["front", "back"] (the launch file reads lists so)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item.strip().strip("'\"").strip() for item in text.split(",")] if text.strip() else []


def camera_namespaces(text: str) -> tuple[str, ...]:
    """Camera namespaces from `--cameras` / `cameras:=` ("" → none); ValueError for an unusable name."""
    names = tuple(name.strip("/") for name in split_list(text))
    for name in names:
        if not name or not all(NAMESPACE_TOKEN.fullmatch(token) for token in name.split("/")):
            raise ValueError(f"camera namespace {name!r} is not a ROS namespace (letters, digits, _ and /)")
    if len(set(names)) != len(names):
        raise ValueError(f"camera namespaces must differ, got {list(names)}")
    return names


def check_cameras(cameras: tuple[str, ...], source: str, image: str, camera_info: str) -> None:
    """ValueError when sources or topics do not fit the cameras (several cameras need relative topic names)."""
    camera_sources(cameras, source)
    if len(cameras) > 1 and (image.startswith("/") or camera_info.startswith("/")):
        raise ValueError("with several cameras, image and camera_info must be relative names (one per namespace)")


def root_only_sections(params_file: Path) -> list[str]:
    """Sections of `params_file` that only the root namespace's nodes get (`pose_node:` is `/pose_node`)."""
    import yaml

    try:
        content = yaml.safe_load(params_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    names = ("pose_node", "image_source")
    return [key for key in content if isinstance(key, str) and key.lstrip("/") in names]


def camera_sources(cameras: tuple[str, ...], source: str) -> list[str]:
    """Per camera its image_source source ("": none): one for all, or one per camera (comma-separated)."""
    if not cameras:
        return [source]
    sources = split_list(source) if source else [""]
    if len(sources) == 1:
        return sources * len(cameras)
    if len(sources) != len(cameras):
        raise ValueError(f"{len(sources)} sources for {len(cameras)} cameras: give one, or one per camera")
    return sources


@dataclass
class CameraNodes:
    """One camera's pipeline: its namespace ("" = the root), pose_node and image_source (when given a source)."""

    namespace: str
    pose_node: PoseNode
    image_source: ImageSource | None


@dataclass
class LaunchedNodes:
    """Nodes started by `start_nodes`, spinning in `executor` (call `executor.spin()` or spin_once).

    `pose_node` and `image_source` are the first camera's; `cameras` lists every camera; `models` is the cache the
    cameras share their loaded models through."""

    pose_node: PoseNode
    image_source: ImageSource | None
    executor: SpinSafeExecutor
    viewer: rclpy.node.Node | None = None  # pose_viewer, when started
    cameras: list[CameraNodes] = field(default_factory=list)
    models: ModelCache | None = None

    def shutdown(self, extra_nodes: tuple = (), close: tuple = ()) -> None:
        """Stop cleanly (pose_ros.ros.shutdown.stop_nodes): callbacks in flight finish, `close` runs, then the
        sources are released and every node (these and `extra_nodes` spinning in the same executor) destroyed."""
        cameras = self.cameras or [CameraNodes("", self.pose_node, self.image_source)]
        sources = [camera.image_source for camera in cameras if camera.image_source is not None]
        nodes = [node for camera in cameras for node in (camera.pose_node, camera.image_source)]
        shutdown.stop_nodes(
            self.executor, (*nodes, self.viewer, *extra_nodes), (*close, *(s.source.close for s in sources))
        )


def start_nodes(args: LaunchArguments, context: rclpy.context.Context | None = None) -> LaunchedNodes:
    """Create, configure and activate the nodes of the launch file; rclpy must be initialised with
    `--ros-args --params-file args.params_file` (see `ros_arguments`).

    With `args.cameras`, one pose_node (and image_source, for a camera given a source) per camera, in the camera's
    namespace, all sharing one `ModelCache`. Raises ValueError for unusable cameras or sources."""
    cameras = args.cameras or ("",)
    check_cameras(args.cameras, args.source, args.image, args.camera_info)
    sources = camera_sources(args.cameras, args.source)
    remaps = ["--ros-args", "-r", f"image:={args.image}", "-r", f"camera_info:={args.camera_info}"]
    chosen = (("mode", args.mode), ("device", args.device), ("image_transport", args.image_transport))
    overrides = [Parameter(name, value=value) for name, value in chosen if value]
    models = ModelCache() if args.share_models else None
    started: list[CameraNodes] = []
    for namespace, source in zip(cameras, sources, strict=True):
        pose_node = PoseNode(
            namespace=namespace, models=models, cli_args=remaps, parameter_overrides=overrides, context=context
        )
        if pose_node.get_parameter("auto_activate").value:
            activate(pose_node)  # one camera after the other: the second finds the first one's models loaded
        image_source = None
        if source:
            source_parameters = {"source": source, **args.source_overrides}
            image_source = ImageSource(
                namespace=namespace,
                cli_args=remaps,
                parameter_overrides=[Parameter(name, value=value) for name, value in source_parameters.items()],
                context=context,
            )
        started.append(CameraNodes(namespace, pose_node, image_source))
    viewer = None
    if args.viewer:
        from pose_ros.ros.viewer import PortInUseError, PoseViewer  # viser only loads when the viewer is asked for

        try:
            viewer = PoseViewer(cli_args=viewer_remaps(args, cameras[0]), context=context)
        except PortInUseError as error:  # pose_node runs on without its viewer
            started[0].pose_node.get_logger().error(f"pose_viewer not started: {error}")
    executor = node_executor(context)  # services answered while a parameter set loads a model
    for node in (*(n for camera in started for n in (camera.pose_node, camera.image_source)), viewer):
        if node is not None:
            executor.add_node(node)
    first = started[0]
    root_only = root_only_sections(args.params_file) if args.cameras else []
    if root_only:
        first.pose_node.get_logger().warning(
            f"{args.params_file}: sections {root_only} apply to the root namespace only, not to the cameras "
            f"{list(args.cameras)}: name them /**/pose_node, /**/image_source (all cameras) or /<camera>/pose_node"
        )
    return LaunchedNodes(first.pose_node, first.image_source, executor, viewer, started, models)


def viewer_remaps(args: LaunchArguments, namespace: str) -> list[str]:
    """pose_viewer's remappings: it runs in the root namespace (its parameters file section stays `pose_viewer`)
    and shows the camera in `namespace` (the first one)."""
    if not namespace:
        return ["--ros-args", "-r", f"camera_info:={args.camera_info}"]
    rules = ["--ros-args"]
    for topic in ("people", "markers", "overlay", "camera_info"):
        target = args.camera_info if topic == "camera_info" else topic
        rules += ["-r", f"{topic}:=/{namespace}/{target}"]
    return rules


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
    except ParameterTypeError as error:
        print(f"pose_launcher: {error}", file=sys.stderr)
        return 2
    finally:
        if nodes is not None:
            nodes.shutdown()
        shutdown.finish()
    return 0
