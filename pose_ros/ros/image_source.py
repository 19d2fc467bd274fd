"""image_source: publishes a video file, an image folder or a V4L2 camera as sensor_msgs/Image + CameraInfo.

Topics: image (sensor_msgs/Image, bgr8), camera_info (sensor_msgs/CameraInfo), both with the same header
(stamp = publish time, frame_id = the frame_id parameter). Intrinsics come from a camera_info YAML file
(`camera_info_file`), else the documented default of pose_ros.core.camera.default_camera_matrix.
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
            ],
        )
        p = {name: self.get_parameter(name).value for name in ("source", "rate", "loop", "frame_id", "max_frames")}
        self.frame_id, self.max_frames = p["frame_id"], int(p["max_frames"])
        self.source = open_source(str(p["source"]), loop=bool(p["loop"]))
        calibration_file = self.get_parameter("camera_info_file").value
        self.calibration = load_camera_calibration(calibration_file) if calibration_file else None
        self.frames = iter(self.source)
        self.published = 0
        self.finished = False
        self.image_pub = self.create_publisher(Image, "image", IMAGE_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", IMAGE_QOS)
        rate = float(p["rate"]) or self.source.fps or 10.0
        self.timer = self.create_timer(1.0 / rate, self.publish_next)
        self.get_logger().info(f"publishing {self.source.kind} {self.source.spec} at {rate:.1f} Hz")

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
