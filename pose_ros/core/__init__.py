"""Pure pose-estimation library: images as numpy arrays, people as `Person`, no ROS imports."""

from pose_ros.core.person import Person

__all__ = ["Person"]
