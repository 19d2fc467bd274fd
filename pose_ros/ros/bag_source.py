"""Read camera frames from a rosbag2 recording (MCAP or sqlite3) with the pure-Python `rosbags` reader.

`ros2 bag` needs the rosbag2 C++ stack, which has no wheels; `rosbags` reads both storage formats. A bag is a
directory with metadata.yaml, or a single `.mcap` / `.db3` file. `BagSource` picks one image topic
(sensor_msgs/Image or sensor_msgs/CompressedImage) and, when the bag has one, its CameraInfo topic, and yields
their messages in recording order as rclpy messages (deserialised from the recorded CDR bytes: headers, stamps
and frame ids exactly as recorded), each with its recording time (the bag's receive time, ns).

A requested topic the bag lacks raises `BagError` listing the topics it has (with types and message counts).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from pose_ros.core.sources import SourceError

IMAGE_TYPES = {"sensor_msgs/msg/Image": Image, "sensor_msgs/msg/CompressedImage": CompressedImage}
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
BAG_SUFFIXES = (".mcap", ".db3")
NO_CAMERA_INFO = "none"


class BagError(SourceError):
    """The bag cannot be read, or it lacks the topic asked for."""


def is_bag(spec: str) -> bool:
    """True for a rosbag2 directory (metadata.yaml, or .mcap/.db3 files inside) or a single .mcap/.db3 file."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    if path.is_dir():
        return (path / "metadata.yaml").is_file() or any(p.suffix in BAG_SUFFIXES for p in path.iterdir())
    return False


@dataclass(frozen=True)
class BagMessage:
    """One recorded message: `time_ns` is the bag's recording (receive) time; `msg` an rclpy message."""

    time_ns: int
    topic: str
    msg: Image | CompressedImage | CameraInfo

    @property
    def is_image(self) -> bool:
        return not isinstance(self.msg, CameraInfo)


def _topic_key(name: str) -> str:
    return "/" + name.strip("/")


def sibling_camera_info_topic(image_topic: str) -> str:
    """The CameraInfo topic a camera driver publishes beside `image_topic` (REP-118/image_transport naming):
    /cam/image_raw → /cam/camera_info, /cam/image_raw/compressed → /cam/camera_info."""
    base = image_topic.removesuffix("/compressed")
    namespace = base.rsplit("/", 1)[0]
    return f"{namespace}/camera_info"


class BagSource:
    """The frames of one image topic of a rosbag2 recording, with its CameraInfo topic when present.

    Args:
        spec: the bag directory, or a single .mcap / .db3 file.
        topic: the image topic; "" picks the bag's only Image/CompressedImage topic.
        camera_info_topic: "" the CameraInfo topic beside the image topic when the bag has it, "none" never,
            else that topic (which must exist).
        loop: restart at the end.
    Raises:
        BagError: unreadable bag, missing or ambiguous topic (the message lists the bag's topics).
    """

    kind = "bag"

    def __init__(self, spec: str, topic: str = "", camera_info_topic: str = "", loop: bool = False) -> None:
        self.spec, self.loop = spec, loop
        self.fps = 0.0
        path = Path(spec).expanduser()
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as error:  # rosbags raises its own ReaderError, FileNotFoundError, yaml errors
            raise BagError(f"cannot read bag {path}: {error}") from error
        self._lock = threading.Lock()
        self._closed = False
        connections = self._reader.connections
        self.topics = {c.topic: c.msgtype for c in connections}
        counts: dict[str, int] = {}
        for c in connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        self.message_counts = counts
        self.image_topic = self._pick_image_topic(topic)
        self.image_type = IMAGE_TYPES[self.topics[self.image_topic]]
        self.camera_info_topic = self._pick_camera_info_topic(camera_info_topic)
        wanted = {self.image_topic, self.camera_info_topic} - {None}
        self._connections = [c for c in connections if c.topic in wanted]
        self.frame_count = counts[self.image_topic]
        duration_s = self._reader.duration * 1e-9
        if self.frame_count > 1 and duration_s > 0:
            self.fps = (self.frame_count - 1) / duration_s

    def describe_topics(self) -> str:
        """'topic (type, N messages)' for every topic of the bag, one per line."""
        return "\n".join(
            f"  {topic} ({msgtype}, {self.message_counts[topic]} messages)"
            for topic, msgtype in sorted(self.topics.items())
        )

    def _pick_image_topic(self, topic: str) -> str:
        images = [t for t, msgtype in sorted(self.topics.items()) if msgtype in IMAGE_TYPES]
        if topic:
            key = _topic_key(topic)
            if key not in self.topics:
                raise BagError(f"bag {self.spec} has no topic {key}; its topics are:\n{self.describe_topics()}")
            if self.topics[key] not in IMAGE_TYPES:
                raise BagError(
                    f"topic {key} of bag {self.spec} is {self.topics[key]}, not sensor_msgs/msg/Image or "
                    f"CompressedImage; its topics are:\n{self.describe_topics()}"
                )
            return key
        if len(images) == 1:
            return images[0]
        if not images:
            raise BagError(
                f"bag {self.spec} has no sensor_msgs/msg/Image or CompressedImage topic; its topics are:\n"
                f"{self.describe_topics()}"
            )
        raise BagError(
            f"bag {self.spec} has {len(images)} image topics ({', '.join(images)}): choose one with the bag_topic "
            f"parameter; its topics are:\n{self.describe_topics()}"
        )

    def _pick_camera_info_topic(self, topic: str) -> str | None:
        if topic == NO_CAMERA_INFO:
            return None
        if topic:
            key = _topic_key(topic)
            if self.topics.get(key) != CAMERA_INFO_TYPE:
                raise BagError(
                    f"bag {self.spec} has no {CAMERA_INFO_TYPE} topic {key}; its topics are:\n{self.describe_topics()}"
                )
            return key
        sibling = sibling_camera_info_topic(self.image_topic)
        return sibling if self.topics.get(sibling) == CAMERA_INFO_TYPE else None

    def messages(self) -> Iterator[BagMessage]:
        """The image (and camera info) messages in recording order; again from the start with `loop`."""
        while True:
            yield from self._once()
            if not self.loop or self._closed:
                return

    def _once(self) -> Iterator[BagMessage]:
        with self._lock:
            if self._closed:
                return
            records = self._reader.messages(connections=self._connections)
        while True:
            with self._lock:
                if self._closed:
                    return
                record = next(records, None)
            if record is None:
                return
            connection, time_ns, raw = record
            msg_class = CameraInfo if connection.topic == self.camera_info_topic else self.image_type
            yield BagMessage(int(time_ns), connection.topic, deserialize_message(bytes(raw), msg_class))

    def frames(self) -> Iterator[BagMessage]:
        """Only the image messages, in recording order."""
        return (m for m in self.messages() if m.is_image)

    def close(self) -> None:
        """Close the reader (safe from another thread while iterating, and twice)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._reader.close()


def open_bag(spec: str, topic: str = "", camera_info_topic: str = "", loop: bool = False) -> BagSource:
    """A BagSource (see there); BagError with the bag's topics when `topic` is missing."""
    return BagSource(spec, topic, camera_info_topic, loop)
