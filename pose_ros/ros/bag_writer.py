"""Write rclpy messages to a rosbag2 (MCAP or sqlite3) with the pure-Python `rosbags` writer.

Messages are serialised by rclpy (CDR, as rosbag2 stores them) and written with a recording time of the
caller's choice (offline processing writes each output at its source frame's recording time).
"""

from __future__ import annotations

from pathlib import Path

from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer

from pose_ros.ros.recorder import pose_ros_typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


def type_name(msg_class: type) -> str:
    """ROS type name 'pkg/msg/Name' of a generated message class."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


class BagWriter:
    """A new rosbag2 directory at `path` (must not exist) in `storage` "mcap" or "sqlite3"; a context manager."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {', '.join(STORAGES)}; got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; choose a new output path (rosbag2 never overwrites)")
        self._store = pose_ros_typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msg_class: type) -> None:
        self._connections[topic] = self._writer.add_connection(topic, type_name(msg_class), typestore=self._store)
        self.counts[topic] = 0

    def write(self, topic: str, time_ns: int, msg) -> None:
        """Write `msg` (an rclpy message, or CDR bytes) on `topic` (added before) at recording time `time_ns`."""
        data = msg if isinstance(msg, bytes) else serialize_message(msg)
        self._writer.write(self._connections[topic], int(time_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
