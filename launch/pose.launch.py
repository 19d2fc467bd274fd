"""Start pose_node, and optionally image_source, with the parameters of config/pose.yaml.

    ros2 launch pose_ros pose.launch.py image:=/camera/image_raw
    ros2 launch pose_ros pose.launch.py image:=/camera/image_raw image_transport:=compressed
    ros2 launch pose_ros pose.launch.py source:=/path/video.avi mode:=bottom_up device:=cpu
    ros2 launch pose_ros pose.launch.py source:=0                       # camera index 0 (/dev/video0)
    ros2 launch pose_ros pose.launch.py source:=/path/video.avi viewer:=true   # + browser view, localhost:8090

An argument left unset changes nothing: the parameters file (params_file) decides. `mode`, `device` and
`image_transport` set the pose_node parameter of the same name only when given; `source` starts image_source;
`viewer:=true` starts pose_viewer.
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


def launch_nodes(context, *args, **kwargs) -> list:
    """The nodes for the arguments' values (an OpaqueFunction: unset arguments add no parameter)."""
    values = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    remappings = [("image", values["image"]), ("camera_info", values["camera_info"])]
    overrides = given(values, POSE_NODE_PARAMETERS)
    nodes = [
        Node(
            package="pose_ros",
            executable="pose_node",
            name="pose_node",
            output="screen",
            parameters=[values["params_file"], overrides] if overrides else [values["params_file"]],
            remappings=remappings,
        )
    ]
    if values["source"]:
        nodes.append(
            Node(
                package="pose_ros",
                executable="image_source",
                name="image_source",
                output="screen",
                parameters=[values["params_file"], given(values, ("source",))],
                remappings=remappings,
            )
        )
    if is_true("viewer", values["viewer"]):
        nodes.append(
            Node(
                package="pose_ros",
                executable="pose_viewer",
                name="pose_viewer",
                output="screen",
                parameters=[values["params_file"]],
                remappings=[("camera_info", values["camera_info"])],
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    declared = [DeclareLaunchArgument(name, default_value=value, description=text) for name, value, text in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=launch_nodes)])
