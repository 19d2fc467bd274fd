"""Start pose_node, and optionally image_source, with the parameters of config/pose.yaml.

    ros2 launch pose_ros pose.launch.py image:=/camera/image_raw
    ros2 launch pose_ros pose.launch.py source:=/path/video.avi mode:=bottom_up device:=cpu
    ros2 launch pose_ros pose.launch.py source:=/path/video.avi viewer:=true   # + browser view, localhost:8090

Without `launch` installed, `ros2 run pose_ros pose_launcher` starts the same nodes with the same file.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, NotEqualsSubstitution, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("params_file", PathJoinSubstitution([FindPackageShare("pose_ros"), "config", "pose.yaml"]),
     "parameters file for pose_node and image_source"),
    ("image", "image", "input image topic of pose_node"),
    ("camera_info", "camera_info", "camera info topic of pose_node"),
    ("mode", "bottom_up", "pose_node mode: bottom_up or top_down"),
    ("device", "auto", "pose_node torch device: auto, cpu, cuda, cuda:N"),
    ("source", "", "if set, start image_source on this video file, image folder or /dev/videoN"),
    ("viewer", "false", "if true, start pose_viewer: a browser view of the results (http://localhost:8090)"),
)


def generate_launch_description() -> LaunchDescription:
    params_file = LaunchConfiguration("params_file")
    source = LaunchConfiguration("source")
    pose_node = Node(
        package="pose_ros",
        executable="pose_node",
        name="pose_node",
        output="screen",
        parameters=[params_file, {"mode": LaunchConfiguration("mode"), "device": LaunchConfiguration("device")}],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))],
    )
    image_source = Node(
        package="pose_ros",
        executable="image_source",
        name="image_source",
        output="screen",
        parameters=[params_file, {"source": source}],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))],
        condition=IfCondition(NotEqualsSubstitution(source, "")),
    )
    viewer = Node(
        package="pose_ros",
        executable="pose_viewer",
        name="pose_viewer",
        output="screen",
        parameters=[params_file],
        remappings=[("camera_info", LaunchConfiguration("camera_info"))],
        condition=IfCondition(LaunchConfiguration("viewer")),
    )
    declared = [DeclareLaunchArgument(name, default_value=value, description=text) for name, value, text in ARGUMENTS]
    return LaunchDescription([*declared, pose_node, image_source, viewer])
