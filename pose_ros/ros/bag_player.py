"""Replay a BagSource on ROS topics: at the recorded pace (scaled), or paced by the consumer; optionally /clock.

Published (relative names, like image_source's other sources):
  image                    sensor_msgs/Image, as recorded (an Image topic), or decoded to bgr8 from a
                           CompressedImage topic with `decode_compressed`
  <resolved image>/compressed  sensor_msgs/CompressedImage, as recorded (a CompressedImage topic, by default;
                           image_transport's naming, so remapping `image` moves it along)
  camera_info              sensor_msgs/CameraInfo: the bag's own (as recorded) when it has one beside the image
                           topic, else one from camera_info_file / the default intrinsics with each image's header
  /clock                   rosgraph_msgs/Clock with `publish_clock`: the recording's time (the bag's receive
                           time of the message being played, advanced at clock_rate_hz between messages when
                           paced by time), so that nodes started with use_sim_time:=true run on it
Headers (stamps and frame ids) are published exactly as recorded.

Pacing (`pace`):
  time      message i is published at start + (t_i - t_0) / rate of wall time (rate 1: as recorded)
  consumer  the next frame is published when a pose_ros/PersonArray with the previous frame's header stamp has
            arrived on `people` (or after pace_timeout_s, counted and logged), so a node slower than the camera
            sees every frame
Playback starts once something subscribes to the image topic (the first frames are not lost to discovery).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from pose_ros.msg import PersonArray
from pose_ros.ros import shutdown
from pose_ros.ros.bag_source import BagMessage, BagSource
from pose_ros.ros.image_conversion import ImageConversionError, array_to_image, compressed_to_rgb8

PACES = ("time", "consumer")
PLAYBACK_QOS = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE)
CLOCK_QOS = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE)
PEOPLE_QOS = QoSProfile(depth=10, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE)
WAIT_LOG_PERIOD_S = 5.0


@dataclass(frozen=True)
class PlaybackSettings:
    """How a bag is replayed (image_source's bag_* parameters)."""

    rate: float = 1.0  # speed factor against the recording (pace "time")
    pace: str = "time"
    pace_timeout_s: float = 10.0  # pace "consumer": publish the next frame anyway after this long
    publish_clock: bool = False
    clock_rate_hz: float = 50.0  # /clock messages per wall second between recorded messages (pace "time")
    decode_compressed: bool = False
    max_frames: int = 0  # 0: all

    def validate(self) -> None:
        """Raise ValueError naming the first unusable value."""
        if self.pace not in PACES:
            raise ValueError(f"bag_pace must be one of {', '.join(PACES)}; got {self.pace!r}")
        if not self.rate > 0:
            raise ValueError(f"bag_rate must be > 0; got {self.rate}")
        if not self.pace_timeout_s > 0:
            raise ValueError(f"bag_pace_timeout_s must be > 0; got {self.pace_timeout_s}")
        if not self.clock_rate_hz > 0:
            raise ValueError(f"clock_rate_hz must be > 0; got {self.clock_rate_hz}")
        if self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0; got {self.max_frames}")


def time_msg(nanoseconds: int) -> Time:
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def stamp_key(msg) -> tuple[int, int]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def decode_compressed(msg: CompressedImage) -> Image:
    """A bgr8 Image (same header) of a JPEG/PNG CompressedImage, decoded as pose_node decodes it (its `format`
    honoured); ImageConversionError when it does not decode."""
    rgb = compressed_to_rgb8(msg)
    return array_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", msg.header)


def image_size(msg: Image) -> tuple[int, int]:
    return msg.width, msg.height


class BagPlayer:
    """Plays `source` on `node`'s topics from a thread of its own (see the module docstring).

    `camera_info_for(width, height, header)` gives the CameraInfo published with each image when the bag has no
    CameraInfo topic. `on_finished` is called once when playback ends (end of the bag,
    max_frames, or a stop).
    """

    def __init__(
        self,
        node: Node,
        source: BagSource,
        settings: PlaybackSettings,
        camera_info_for: Callable[[int, int, Header], CameraInfo],
        on_finished: Callable[[], None] = lambda: None,
    ) -> None:
        settings.validate()
        self.node, self.source, self.settings = node, source, settings
        self._camera_info_for = camera_info_for
        self._compressed_size: tuple[int, int] | None = None
        self._on_finished = on_finished
        self.published = 0  # images published
        self.pace_timeouts = 0  # frames whose people did not come within pace_timeout_s
        self.decode_errors = 0
        compressed = source.image_type is CompressedImage
        if compressed and not settings.decode_compressed:
            topic = node.resolve_topic_name("image").rstrip("/") + "/compressed"
            self.image_pub = node.create_publisher(CompressedImage, topic, PLAYBACK_QOS)
        else:
            self.image_pub = node.create_publisher(Image, "image", PLAYBACK_QOS)
        self._decode = compressed and settings.decode_compressed
        self.info_pub = node.create_publisher(CameraInfo, "camera_info", PLAYBACK_QOS)
        self.clock_pub = node.create_publisher(Clock, "/clock", CLOCK_QOS) if settings.publish_clock else None
        self._condition = threading.Condition()
        self._people_stamps: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        if settings.pace == "consumer":
            self.people_sub = node.create_subscription(PersonArray, "people", self._on_people, PEOPLE_QOS)
        self._thread = threading.Thread(target=self._run, name="bag_player", daemon=True)

    @property
    def image_topic(self) -> str:
        return self.image_pub.topic_name

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """End playback and wait for the thread."""
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout_s)

    def _on_people(self, msg: PersonArray) -> None:
        with self._condition:
            self._people_stamps.add(stamp_key(msg))
            self._condition.notify_all()

    def _running(self) -> bool:
        return not self._stop.is_set() and shutdown.may_publish(self.node)

    # ----- the player thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._play()
        except Exception as error:  # a damaged bag: say so and end like at the end of the bag
            if self._running():
                self.node.get_logger().error(f"bag playback stopped: {type(error).__name__}: {error}")
        finally:
            self._on_finished()

    def _play(self) -> None:
        settings = self.settings
        if not self._wait_for_consumer():
            return
        start_wall, start_bag = None, None
        for record in self.source.messages():
            if not self._running():
                return
            if settings.max_frames and record.is_image and self.published >= settings.max_frames:
                return
            if start_bag is None or record.time_ns < start_bag:  # the first message, or a loop restarted
                start_wall, start_bag = time.monotonic(), record.time_ns
            if settings.pace == "time" and not self._wait_until(start_wall, start_bag, record.time_ns):
                return
            self._publish_clock(record.time_ns)
            if record.is_image:
                if not self._publish_image(record):
                    continue
                if settings.pace == "consumer" and not self._wait_for_people(record.msg):
                    return
            else:
                self.info_pub.publish(record.msg)

    def _wait_for_consumer(self) -> bool:
        """Block until something subscribes to the image topic (and, paced by the consumer, publishes people), so that
        the first frames are not lost; False when stopped."""
        consumer = self.settings.pace == "consumer"
        logged = time.monotonic()
        while self._running():
            ready = self.image_pub.get_subscription_count() > 0
            if ready and (not consumer or self.people_sub.get_publisher_count() > 0):
                return True
            if time.monotonic() - logged >= WAIT_LOG_PERIOD_S:
                logged = time.monotonic()
                what = f" that publishes {self.people_sub.topic_name}" if consumer else ""
                self.node.get_logger().info(f"waiting for a subscriber on {self.image_topic}{what}")
            self._stop.wait(0.05)
        return False

    def _wait_until(self, start_wall: float, start_bag: int, time_ns: int) -> bool:
        """Sleep until the wall time of the recording time `time_ns`, publishing /clock meanwhile."""
        rate = self.settings.rate
        due = start_wall + (time_ns - start_bag) * 1e-9 / rate
        period = 1.0 / self.settings.clock_rate_hz
        while self._running():
            now = time.monotonic()
            if now >= due:
                return True
            if self.clock_pub is not None:
                self._publish_clock(start_bag + int((now - start_wall) * rate * 1e9))
            self._stop.wait(min(due - now, period if self.clock_pub is not None else due - now))
        return False

    def _publish_clock(self, time_ns: int) -> None:
        if self.clock_pub is not None and self._running():
            self.clock_pub.publish(Clock(clock=time_msg(time_ns)))

    def _publish_image(self, record: BagMessage) -> bool:
        msg = record.msg
        if self._decode:
            try:
                msg = decode_compressed(msg)
            except ImageConversionError as error:
                self.decode_errors += 1
                self.node.get_logger().error(f"frame skipped: {error} [{self.decode_errors} so far]")
                return False
        if not self._running():
            return False
        if self.source.camera_info_topic is None:
            self.info_pub.publish(self._camera_info(msg))
        if self.settings.pace == "consumer":
            with self._condition:
                self._people_stamps.discard(stamp_key(msg))  # a looped bag repeats its stamps
        self.image_pub.publish(msg)
        self.published += 1
        return True

    def _camera_info(self, msg: Image | CompressedImage) -> CameraInfo:
        if isinstance(msg, Image):
            size = (msg.width, msg.height)
        else:  # a compressed topic keeps its size: decode the first frame only
            if self._compressed_size is None:
                self._compressed_size = image_size(decode_compressed(msg))
            size = self._compressed_size
        return self._camera_info_for(size[0], size[1], msg.header)

    def _wait_for_people(self, msg: Image | CompressedImage) -> bool:
        """Wait until people with `msg`'s stamp arrived (True), pace_timeout_s passed (True, logged) or a stop."""
        key = stamp_key(msg)
        deadline = time.monotonic() + self.settings.pace_timeout_s
        with self._condition:
            while key not in self._people_stamps:
                if not self._running():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    self.pace_timeouts += 1
                    self.node.get_logger().warning(
                        f"no {self.people_sub.topic_name} for stamp {key[0]}.{key[1]:09d} within "
                        f"{self.settings.pace_timeout_s:g} s: publishing the next frame [{self.pace_timeouts} so far]"
                    )
                    return True
                self._condition.wait(min(left, 0.1))
            self._people_stamps.discard(key)
        return True
