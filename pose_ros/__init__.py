"""pose_ros: human pose perception for ROS 2.

Layers (imports only go downwards):
  pose_ros.tools  command-line tools (set-up helpers, demo, benchmarks, evaluation)
  pose_ros.ros    ROS 2 nodes and message conversion (needs rclpy and pose_ros.msg)
  pose_ros.core   the pure library: numpy/torch only, no rclpy (what `pip install .` ships)
"""

# pose_ros is installed by colcon into one directory together with the generated message modules
# (pose_ros.msg). extend_path lets a source checkout placed earlier on sys.path (tests, development)
# still find pose_ros.msg in the install space.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
