"""Start pose_node, and optionally image_source, with the parameters of config/pose.yaml.

    ros2 launch pose_ros pose.launch.py image:=/camera/image_raw
    ros2 launch pose_ros pose.launch.py image:=/camera/image_raw image_transport:=compressed
    ros2 launch pose_ros pose.launch.py source:=/path/video.avi mode:=bottom_up device:=cpu
    ros2 launch pose_ros pose.launch.py source:=0                       # camera index 0 (/dev/video0)
    ros2 launch pose_ros pose.launch.py source:=/path/video.avi viewer:=true   # + browser view, localhost:8090
    ros2 launch pose_ros pose.launch.py cameras:=[front,back]           # /front/image → /front/people, /back/...
    ros2 launch pose_ros pose.launch.py cameras:=[front,back] source:=[/path/video.avi,/path/frames]

An argument left unset changes nothing: the parameters file (params_file) decides. `mode`, `device` and
`image_transport` set the pose_node parameter of the same name only when given; `source` starts image_source;
`viewer:=true` starts pose_viewer.
`cameras:=[front,back]` starts one pose_node (and image_source, with a source) per camera in the camera's
namespace: topics /front/image ... /front/people; parameters from the file's `/**/pose_node` section, then its
`/front/pose_node` section; `source` then takes one source for all cameras or one per camera. (Each camera is its
own process here; the embedded launcher runs them in one process and shares the loaded models.)
Without `launch` installed, `ros2 run pose_ros pose_launcher` starts the same nodes with the same file and
arguments of the same meaning.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("params_file", PathJoinSubstitution([FindPackageShare("pose_ros"), "config", "pose.yaml"]),
     "parameters file for pose_node and image_source"),
    ("image", "image", "input image topic of pose_node (compressed input: <image>/compressed)"),
    ("camera_info", "camera_info", "camera info topic of pose_node"),
    ("mode", "", "pose_node mode: bottom_up or top_down (unset: the parameters file's)"),
    ("device", "", "pose_node torch device: auto, cpu, cuda, cuda:N (unset: the parameters file's)"),
    ("image_transport", "", "pose_node input: raw or compressed (unset: the parameters file's)"),
    ("source", "", "if set, start image_source on this video file, image folder, /dev/videoN or camera index"),
    ("viewer", "false", "if true, start pose_viewer: a browser view of the results (http://localhost:8090)"),
    ("cameras", "", "camera namespaces, e.g. [front,back]: one pose_node per camera under its namespace "
     "(unset: one, in the launch namespace)"),
)
# Launch arguments that set the pose_node parameter of the same name, and only when given.
POSE_NODE_PARAMETERS = ("mode", "device", "image_transport")


def given(values: dict, names: tuple) -> dict:
    """The parameters among `names` whose argument is non-empty, as strings (launch would type `0` as an int)."""
    return {name: ParameterValue(values[name], value_type=str) for name in names if values[name]}


def is_true(name: str, value: str) -> bool:
    """A boolean argument read as launch's IfCondition reads it: true/1 or false/0, any case."""
    text = value.strip().lower()
    if text not in ("true", "1", "false", "0"):
        raise ValueError(f"launch argument {name} must be true or false, got {value!r}")
    return text in ("true", "1")


def split_list(text: str) -> list:
    """`[front,back]`, `front,back` or `['front', 'back']` → ["front", "back"] (as pose_launcher reads them)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item.strip().strip("'\"").strip() for item in text.split(",")] if text.strip() else []


def camera_namespaces(text: str) -> list:
    """The `cameras` argument as namespaces ([""] when unset: one camera in the launch namespace)."""
    names = [name.strip("/") for name in split_list(text)]
    for name in names:
        tokens = name.split("/")
        if not name or not all(t and (t[0].isalpha() or t[0] == "_") and t.replace("_", "a").isalnum() for t in tokens):
            raise ValueError(f"launch argument cameras: {name!r} is not a ROS namespace (letters, digits, _ and /)")
    if len(set(names)) != len(names):
        raise ValueError(f"launch argument cameras: namespaces must differ, got {names}")
    return names or [""]


def camera_sources(cameras: list, source: str) -> list:
    """Per camera its source ("": no image_source): one for all cameras, or one per camera."""
    if cameras == [""]:
        return [source]
    sources = split_list(source) if source else [""]
    if len(sources) == 1:
        return sources * len(cameras)
    if len(sources) != len(cameras):
        raise ValueError(f"launch argument source: {len(sources)} sources for {len(cameras)} cameras")
    return sources


def launch_nodes(context, *args, **kwargs) -> list:
    """The nodes for the arguments' values (an OpaqueFunction: unset arguments add no parameter)."""
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    cameras = camera_namespaces(values["cameras"])
    sources = camera_sources(cameras, values["source"])
    if len(cameras) > 1 and (values["image"].startswith("/") or values["camera_info"].startswith("/")):
        raise ValueError("with several cameras, image and camera_info must be relative names (one per namespace)")
    remappings = [("image", values["image"]), ("camera_info", values["camera_info"])]
    overrides = given(values, POSE_NODE_PARAMETERS)
    nodes = []
    for namespace, source in zip(cameras, sources, strict=True):
        placed = {"namespace": namespace} if namespace else {}  # unset: the launch namespace, as before
        nodes.append(
            Node(
                package="pose_ros",
                executable="pose_node",
                name="pose_node",
                **placed,
                output="screen",
                parameters=[values["params_file"], overrides] if overrides else [values["params_file"]],
                remappings=remappings,
            )
        )
        if source:
            nodes.append(
                Node(
                    package="pose_ros",
                    executable="image_source",
                    name="image_source",
                    **placed,
                    output="screen",
                    parameters=[values["params_file"], {"source": ParameterValue(source, value_type=str)}],
                    remappings=remappings,
                )
            )
    if is_true("viewer", values["viewer"]):
        shown = cameras[0]  # the viewer (one web page, one port) shows the first camera
        viewer_remappings = [("camera_info", values["camera_info"])]
        if shown:
            viewer_remappings = [
                (topic, f"/{shown}/{target}")
                for topic, target in (("people", "people"), ("markers", "markers"), ("overlay", "overlay"),
                                      ("camera_info", values["camera_info"]))
            ]  # fmt: skip
        nodes.append(
            Node(
                package="pose_ros",
                executable="pose_viewer",
                name="pose_viewer",
                output="screen",
                parameters=[values["params_file"]],
                remappings=viewer_remappings,
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=value, description=text) for name, value, text in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=launch_nodes)])
