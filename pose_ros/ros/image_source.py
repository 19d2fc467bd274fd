"""image_source: publishes a video file, an image folder or a V4L2 camera as sensor_msgs/Image + CameraInfo,
or replays a rosbag2 recording (MCAP or sqlite3).

Topics: image (sensor_msgs/Image, bgr8), camera_info (sensor_msgs/CameraInfo), both with the same header
(stamp = publish time, frame_id = the frame_id parameter). Intrinsics come from a camera_info YAML file
(`camera_info_file`), else the documented default of pose_ros.core.camera.default_camera_matrix.

A bag (a rosbag2 directory, or one .mcap/.db3 file) is replayed by pose_ros.ros.bag_player with its recorded
headers: at the recorded pace scaled by bag_rate, or paced by the consumer (bag_pace: consumer), optionally with
/clock (publish_clock); a CompressedImage topic is republished on image/compressed (or decoded, decode_compressed).
"""

from __future__ import annotations

import sys

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from pose_ros.core.camera import CameraCalibration, load_camera_calibration
from pose_ros.core.sources import SourceError, open_source
from pose_ros.ros import shutdown
from pose_ros.ros.bag_player import PACES, BagPlayer, PlaybackSettings
from pose_ros.ros.bag_source import is_bag, open_bag
from pose_ros.ros.image_conversion import array_to_image

IMAGE_QOS = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.RELIABLE)


def calibration_to_msg(calibration: CameraCalibration, header: Header) -> CameraInfo:
    """CameraInfo for `calibration` with the given header."""
    return CameraInfo(
        header=header,
        width=calibration.width,
        height=calibration.height,
        distortion_model=calibration.distortion_model,
        d=calibration.distortion.tolist(),
        k=calibration.camera_matrix.ravel().tolist(),
        r=calibration.rectification.ravel().tolist(),
        p=calibration.projection.ravel().tolist(),
    )


class ImageSource(Node):
    """Publishes frames of a source at a fixed rate."""

    def __init__(self, node_name: str = "image_source", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameters(
            "",
            [
                # Dynamically typed: `-p source:=0` and launch's `source:=0` give an integer (a camera index).
                ("source", "", ParameterDescriptor(
                    description="video file, image folder, /dev/videoN or camera index", dynamic_typing=True)),
                ("rate", 10.0, ParameterDescriptor(
                    description="frames per second to publish (0: the video's own rate, else 10)",
                    floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0)])),
                ("loop", True, ParameterDescriptor(description="restart the video or folder at its end")),
                ("frame_id", "camera_optical_frame", ParameterDescriptor(description="frame_id of the headers")),
                ("camera_info_file", "", ParameterDescriptor(
                    description="camera_info YAML with the intrinsics (empty: default from the image size)")),
                ("max_frames", 0, ParameterDescriptor(
                    description="stop after this many frames (0: no limit)",
                    integer_range=[IntegerRange(from_value=0, to_value=10**9, step=1)])),
                # rosbag2 replay (source: a bag directory or .mcap/.db3 file); docs/bags.md
                ("bag_topic", "", ParameterDescriptor(
                    description="bag: the Image or CompressedImage topic to play (empty: the bag's only one)")),
                ("bag_camera_info_topic", "", ParameterDescriptor(
                    description="bag: CameraInfo topic to play (empty: the one beside bag_topic if recorded; none)")),
                ("bag_rate", 1.0, ParameterDescriptor(
                    description="bag: playback speed against the recording (bag_pace time)",
                    floating_point_range=[FloatingPointRange(from_value=0.01, to_value=100.0)])),
                ("bag_pace", "time", ParameterDescriptor(
                    description="bag: time (recorded pace x bag_rate) or consumer (next frame once people for the "
                    "previous stamp arrived on the people topic)", additional_constraints="one of: time, consumer")),
                ("bag_pace_timeout_s", 10.0, ParameterDescriptor(
                    description="bag, pace consumer: publish the next frame anyway after this long without people",
                    floating_point_range=[FloatingPointRange(from_value=0.01, to_value=3600.0)])),
                ("publish_clock", False, ParameterDescriptor(
                    description="bag: publish /clock with the recording's time (for nodes with use_sim_time)")),
                ("clock_rate_hz", 50.0, ParameterDescriptor(
                    description="bag, publish_clock: /clock messages per second between recorded messages",
                    floating_point_range=[FloatingPointRange(from_value=1.0, to_value=1000.0)])),
                ("decode_compressed", False, ParameterDescriptor(
                    description="bag: publish a CompressedImage topic decoded as Image on image (else as "
                    "CompressedImage on image/compressed)")),
            ],
        )
        p = {name: self.get_parameter(name).value for name in ("source", "rate", "loop", "frame_id", "max_frames")}
        self.frame_id, self.max_frames = p["frame_id"], int(p["max_frames"])
        calibration_file = self.get_parameter("camera_info_file").value
        self.calibration = load_camera_calibration(calibration_file) if calibration_file else None
        self.published = 0
        self.finished = False
        self.player: BagPlayer | None = None
        if is_bag(str(p["source"])):
            self._start_bag(str(p["source"]), bool(p["loop"]))
            return
        self.source = open_source(str(p["source"]), loop=bool(p["loop"]))
        self.frames = iter(self.source)
        self.image_pub = self.create_publisher(Image, "image", IMAGE_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", IMAGE_QOS)
        rate = float(p["rate"]) or self.source.fps or 10.0
        self.timer = self.create_timer(1.0 / rate, self.publish_next)
        self.get_logger().info(f"publishing {self.source.kind} {self.source.spec} at {rate:.1f} Hz")

    def _start_bag(self, spec: str, loop: bool) -> None:
        """Replay the bag at `spec` from the player's thread (raises SourceError/ValueError for bad input)."""
        value = {name: self.get_parameter(name).value for name in (
            "bag_topic", "bag_camera_info_topic", "bag_rate", "bag_pace", "bag_pace_timeout_s", "publish_clock",
            "clock_rate_hz", "decode_compressed")}
        settings = PlaybackSettings(
            rate=float(value["bag_rate"]),
            pace=str(value["bag_pace"]),
            pace_timeout_s=float(value["bag_pace_timeout_s"]),
            publish_clock=bool(value["publish_clock"]), clock_rate_hz=float(value["clock_rate_hz"]),
            decode_compressed=bool(value["decode_compressed"]), max_frames=self.max_frames,
        )
        if settings.pace not in PACES:
            raise ValueError(f"bag_pace must be one of {', '.join(PACES)}; got {settings.pace!r}")
        self.source = open_bag(spec, str(value["bag_topic"]), str(value["bag_camera_info_topic"]), loop)
        self.player = BagPlayer(self, self.source, settings, self._camera_info_for, on_finished=self._on_bag_finished)
        pace = f"{settings.rate:g}x the recorded pace" if settings.pace == "time" else "paced by the consumer"
        self.get_logger().info(
            f"playing bag {spec}: {self.source.image_topic} ({self.source.frame_count} frames, "
            f"{self.source.image_type.__name__}) on {self.player.image_topic}, {pace}"
            + (", publishing /clock" if settings.publish_clock else "")
        )
        self.player.start()

    def _camera_info_for(self, width: int, height: int, header: Header) -> CameraInfo:
        return calibration_to_msg(self.calibration or CameraCalibration.default(width, height), header)

    def _on_bag_finished(self) -> None:
        self.published = self.player.published if self.player is not None else 0
        if not self.finished:
            self.get_logger().info(f"bag finished after {self.published} frames")
        self.finished = True

    def destroy_node(self) -> None:
        if self.player is not None:
            self.player.stop()
        super().destroy_node()

    def publish_next(self) -> None:
        """Publish the next frame and its CameraInfo; stop the timer at the end of the source."""
        if self.finished or not shutdown.may_publish(self):
            return
        frame = next(self.frames, None)
        if frame is None or (self.max_frames and self.published >= self.max_frames):
            self.finished = True
            self.timer.cancel()
            self.get_logger().info(f"source finished after {self.published} frames")
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        height, width = frame.shape[:2]
        calibration = self.calibration or CameraCalibration.default(width, height)
        self.info_pub.publish(calibration_to_msg(calibration, header))
        self.image_pub.publish(array_to_image(frame, "bgr8", header))
        self.published += 1


def main(argv: list[str] | None = None) -> int:
    """Publish until the source ends, or SIGINT/SIGTERM; then stop cleanly (pose_ros.ros.shutdown), return 0."""
    shutdown.init(argv if argv is not None else sys.argv)
    try:
        node = ImageSource()
    except (SourceError, ValueError) as error:
        print(f"image_source: {error}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        shutdown.spin_until_stopped(executor, done=lambda: node.finished)
    finally:
        shutdown.stop_nodes(executor, [node], close=[node.source.close])
        shutdown.finish()
    return 0
