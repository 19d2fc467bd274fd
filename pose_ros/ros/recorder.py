"""Record topics to a rosbag2 (MCAP) without the rosbag2 C++ stack, using the pure-Python `rosbags` writer.

Messages are taken as raw CDR bytes (no deserialisation), so recording costs almost nothing. The bag
can be read by `ros2 bag`, Foxglove, or `rosbags` (see `pose_ros_typestore` for this package's types).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

RECORD_QOS = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)


def message_definitions_dir() -> Path:
    """share/pose_ros/msg of the install space (the .msg files rosidl installs)."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "share" / "pose_ros" / "msg"
        if prefix and candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "msg"


def pose_ros_typestore() -> Typestore:
    """A rosbags typestore with ROS 2 Jazzy's standard types plus pose_ros/msg/*."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = {}
    for path in sorted(message_definitions_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"pose_ros/msg/{path.stem}"))
    store.register(types)
    return store


class BagRecorder(Node):
    """Subscribes to `topics` ({name: message class}) and writes every message to an MCAP rosbag2 at `path`."""

    def __init__(self, path: Path, topics: dict[str, type], context=None) -> None:
        super().__init__("pose_recorder", context=context)
        self.path = Path(path)
        self.counts: dict[str, int] = dict.fromkeys(topics, 0)
        self._lock = threading.Lock()
        store = pose_ros_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections = {}
        for topic, msg_class in topics.items():
            type_name = _type_name(msg_class)
            resolved = self.resolve_topic_name(topic)
            self._connections[topic] = self._writer.add_connection(resolved, type_name, typestore=store)
            self.create_subscription(msg_class, topic, self._writer_callback(topic), RECORD_QOS, raw=True)

    def _writer_callback(self, topic: str):
        def write(data: bytes) -> None:
            with self._lock:
                if self._writer is None:
                    return
                self._writer.write(self._connections[topic], self.get_clock().now().nanoseconds, data)
                self.counts[topic] += 1

        return write

    def close(self) -> None:
        """Finish the bag file (safe to call twice)."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def _type_name(msg_class: type) -> str:
    """ROS type name 'pkg/msg/Name' of a generated message class."""
    package = msg_class.__module__.split(".")[0]
    return f"{package}/msg/{msg_class.__name__}"
