"""pose_node: camera images in; people, RViz markers and a debug overlay out.

A lifecycle node: configure creates the publishers and loads the model, activate subscribes to the
image, deactivate unsubscribes, cleanup drops the model. With `auto_activate` (default) it configures and
activates itself at start-up, so `ros2 run pose_ros pose_node` just works.

Topics (relative names; remap them):
  in   image (sensor_msgs/Image; with image_transport=compressed: image/compressed, sensor_msgs/CompressedImage),
       camera_info (sensor_msgs/CameraInfo, optional),
       depth_image (sensor_msgs/Image 16UC1 mm or 32FC1 m, registered to image; optional),
       depth_camera_info (sensor_msgs/CameraInfo of the depth image; optional)
  out  people (pose_ros/PersonArray), markers (visualization_msgs/MarkerArray), overlay (sensor_msgs/Image;
       overlay/compressed with overlay_transport compressed or both),
       /diagnostics (diagnostic_msgs/DiagnosticArray, 1 Hz)
Every output carries the input image's header unchanged.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.parameter import Parameter
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from pose_ros.core.camera import default_camera_matrix
from pose_ros.core.depth import DepthSettings, StampMatcher, add_keypoints_3d, depth_to_metres
from pose_ros.core.draw import draw_people
from pose_ros.core.meshing import MeshStage, create_mesh_stage, decimate_people_meshes
from pose_ros.core.person import BodyModelParams, Person
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.tracking import PersonTracker, TrackerSettings
from pose_ros.msg import PersonArray
from pose_ros.ros import shutdown
from pose_ros.ros.diagnostics import FrameStatistics, diagnostics_message
from pose_ros.ros.image_conversion import ImageConversionError, array_to_image, image_to_array, message_to_rgb8
from pose_ros.ros.messages import people_to_markers, people_to_msg
from pose_ros.ros.parameters import (
    PARAMETER_NAMES,
    PIPELINE_FIELDS,
    check_choice,
    declare_all,
    mesh_config,
    pipeline_config,
)
from pose_ros.ros.transport import ImageOutput, create_image_subscription

OUTPUT_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST)
ERROR_LOG_PERIOD_S = 5.0
# What loading or running a model may raise for bad configuration or files (reported, never fatal).
MODEL_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError, ImportError)
T = TypeVar("T")


class PoseNode(LifecycleNode):
    """Human pose estimation on an image topic (see the module docstring for topics)."""

    def __init__(self, node_name: str = "pose_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare_all(self)
        self.counters: Counter[str] = Counter()  # frames_received, frames_processed, and one per error kind
        self.errors_logged: Counter[str] = Counter()  # how often each error kind was actually logged
        self.last_error: dict[str, str] = {}  # the latest message per error kind
        self._last_error_log: dict[str, float] = {}
        self._pipeline = PosePipeline()
        # Every model call runs on this one thread: executors hand callbacks to varying threads, and torch
        # called from a new thread each time builds new OpenMP thread teams (measured: 2-3x slower per frame).
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose_models")
        self._config = pipeline_config(self._values())
        self._camera_matrix: np.ndarray | None = None
        self._depth_camera_matrix: np.ndarray | None = None
        self._depth_frames: StampMatcher[Image] = StampMatcher(self.get_parameter("depth_sync_tolerance_s").value)
        self._subscriptions_active: list = []
        self._image_sub = None
        self._people_pub = self._markers_pub = self._overlay_pub = None
        self._tracker = PersonTracker(self._tracker_settings(self._values()))
        self._mesh_config = mesh_config(self._values())
        self._mesh_stage: MeshStage | None = None
        self._last_mesh_time = -np.inf
        self._meshes_by_track: dict[int, BodyModelParams] = {}
        self.statistics = FrameStatistics()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _on_model_thread(self, function: Callable[..., T], *args) -> T:
        """Run `function(*args)` on the node's model thread and return its result (exceptions propagate)."""
        return self._model_thread.submit(function, *args).result()

    def destroy_node(self) -> None:
        self._model_thread.shutdown(wait=True)
        super().destroy_node()

    # ----- parameters -------------------------------------------------------------------------------------------
    def _values(self) -> dict[str, object]:
        return {name: self.get_parameter(name).value for name in PARAMETER_NAMES}

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a parameter change as a whole (a new model is loaded before it is accepted), then apply it."""
        values = self._values() | {p.name: p.value for p in parameters}
        reasons = [reason for p in parameters if (reason := check_choice(p.name, p.value))]
        if reasons:
            return self._reject_parameters(reasons[0])
        tracker_settings, new_mesh_config, config = (
            self._tracker_settings(values),
            mesh_config(values),
            pipeline_config(values),
        )
        try:
            tracker_settings.validate()
            new_mesh_config.validate()
            config.validate()
            if config != self._config and self._is_configured():
                self._on_model_thread(self._pipeline.estimator, config)  # load now: a bad model is rejected here
        except MODEL_ERRORS as error:
            return self._reject_parameters(str(error))
        self._depth_frames.tolerance_s = float(values["depth_sync_tolerance_s"])
        if tracker_settings != self._tracker.settings:
            self._tracker = PersonTracker(tracker_settings)
        if new_mesh_config != self._mesh_config:
            self._mesh_config = new_mesh_config
            if self._is_configured():
                self._load_mesh_stage()  # a missing mesh model is reported once; 2D output goes on
        if config != self._config:
            changed = {f: getattr(config, f) for f in PIPELINE_FIELDS if getattr(config, f) != getattr(self._config, f)}
            self.get_logger().info(f"parameters changed, effective from the next frame: {changed}")
            self._config = config
            self._tracker.reset()  # another model may use another layout and other scores
        return SetParametersResult(successful=True)

    @staticmethod
    def _tracker_settings(values: dict[str, object]) -> TrackerSettings:
        return TrackerSettings(
            metric=str(values["tracking_metric"]),
            match_threshold=float(values["tracking_match_threshold"]),
            max_age=int(values["tracking_max_age"]),
            camera_compensation=bool(values["tracking_camera_compensation"]),
            second_pass_distance=float(values["tracking_second_pass_distance"]),
        )

    def _reject_parameters(self, reason: str) -> SetParametersResult:
        self.counters["rejected_parameter"] += 1
        self.last_error["rejected_parameter"] = reason
        self.get_logger().warning(f"parameter change rejected: {reason}")
        return SetParametersResult(successful=False, reason=reason)

    # ----- lifecycle ---------------------------------------------------------------------------------------------
    def _is_configured(self) -> bool:
        return self._people_pub is not None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            started = time.perf_counter()
            self._on_model_thread(self._pipeline.estimator, self._config)
            self.get_logger().info(
                f"model {self._config.model_name} ({self._config.mode}) ready on device {self._config.device} "
                f"in {time.perf_counter() - started:.1f} s"
            )
        except MODEL_ERRORS as error:
            self._log_error("model_load", f"cannot load the model: {error}")
            return TransitionCallbackReturn.FAILURE
        self._load_mesh_stage()
        self._people_pub = self.create_lifecycle_publisher(PersonArray, "people", OUTPUT_QOS)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "markers", OUTPUT_QOS)
        self._overlay_pub = ImageOutput(
            self, "overlay", self.get_parameter("overlay_transport").value, OUTPUT_QOS,
            self.create_lifecycle_publisher, self.get_parameter("overlay_jpeg_quality").value,
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliability = self.get_parameter("image_reliability").value
        policy = QoSReliabilityPolicy.RELIABLE if reliability == "reliable" else QoSReliabilityPolicy.BEST_EFFORT
        image_qos = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST, reliability=policy)
        transport = self.get_parameter("image_transport").value
        self._image_sub = create_image_subscription(self, "image", transport, self._on_image, image_qos)
        depth_qos = QoSProfile(depth=5, history=QoSHistoryPolicy.KEEP_LAST, reliability=policy)
        self._subscriptions_active = [
            self._image_sub,
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos),
            self.create_subscription(Image, "depth_image", self._on_depth_image, depth_qos),
            self.create_subscription(CameraInfo, "depth_camera_info", self._on_depth_camera_info, image_qos),
        ]
        self.get_logger().info(
            f"subscribed to {self._image_sub.topic_name} ({transport}, {reliability}, keep last 1)"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for subscription in self._subscriptions_active:
            self.destroy_subscription(subscription)
        self._subscriptions_active = []
        self._image_sub = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        for publisher in (self._people_pub, self._markers_pub):
            if publisher is not None:
                self.destroy_publisher(publisher)
        if self._overlay_pub is not None:
            self._overlay_pub.destroy()
        self._people_pub = self._markers_pub = self._overlay_pub = None
        self._pipeline = PosePipeline()
        self._mesh_stage = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def _load_mesh_stage(self) -> None:
        """Build the configured mesh stage; on failure say why once and keep publishing 2D results."""
        self._mesh_stage, self._meshes_by_track = None, {}
        model = self._mesh_config.resolved_model()
        try:
            started = time.perf_counter()
            self._mesh_stage = create_mesh_stage(self._mesh_config)
        except MODEL_ERRORS as error:
            self._log_error("mesh_model_unavailable", f"mesh model {model} unavailable, publishing 2D only: {error}")
            return
        if self._mesh_stage is not None:
            self.get_logger().info(f"mesh model {model} ready in {time.perf_counter() - started:.1f} s")

    def _add_meshes(self, image_rgb: np.ndarray, people: list[Person], camera_matrix: np.ndarray) -> None:
        """Meshes at most mesh_rate_hz; in between, tracked people keep their last mesh."""
        if self._mesh_stage is None or not people:
            return
        rate = float(self.get_parameter("mesh_rate_hz").value)
        now = time.monotonic()
        if rate <= 0 or now - self._last_mesh_time >= 1.0 / rate:
            self._last_mesh_time = now
            try:
                self._on_model_thread(self._mesh_stage, image_rgb, people, camera_matrix)
            except MODEL_ERRORS as error:
                self._log_error("mesh_error", f"mesh stage failed on this frame: {error}")
                return
            decimate_people_meshes(people, self._mesh_stage, int(self.get_parameter("mesh_max_faces").value))
            self._meshes_by_track = {p.id: p.body_model for p in people if p.tracked and p.body_model is not None}
        else:
            for person in people:
                if person.tracked and person.body_model is None:
                    person.body_model = self._meshes_by_track.get(person.id)

    # ----- frames ------------------------------------------------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        k = np.asarray(msg.k, np.float64).reshape(3, 3)
        self._camera_matrix = k if k[0, 0] > 0 and k[1, 1] > 0 else None

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        k = np.asarray(msg.k, np.float64).reshape(3, 3)
        self._depth_camera_matrix = k if k[0, 0] > 0 and k[1, 1] > 0 else None

    def _on_depth_image(self, msg: Image) -> None:
        """Keep recent depth frames; they are decoded only when a colour frame matches one."""
        self._depth_frames.add(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, msg)

    def _add_depth(self, msg: Image, people: list[Person], camera_matrix: np.ndarray, image_hw: tuple) -> None:
        """3D keypoints from the depth frame matching `msg`'s stamp, if there is one."""
        match = self._depth_frames.match(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        if match is None or not people:
            return
        depth_msg = match[1]
        if depth_msg.encoding not in ("16UC1", "32FC1", "mono16"):
            self._log_error("bad_depth", f"depth image ignored: encoding {depth_msg.encoding} is not 16UC1 or 32FC1")
            return
        try:
            depth_m = depth_to_metres(image_to_array(depth_msg))
        except ImageConversionError as error:
            self._log_error("bad_depth", f"depth image ignored: {error}")
            return
        depth_k = self._depth_camera_matrix
        if depth_k is None and depth_m.shape[:2] != image_hw:
            self._log_error("bad_depth", "depth image of another size needs depth_camera_info; ignored")
            return
        settings = DepthSettings(window=int(self.get_parameter("depth_window").value))
        add_keypoints_3d(people, depth_m, camera_matrix, depth_k, settings)

    def _log_error(self, kind: str, text: str) -> None:
        """Count an error of `kind` and log it, at most once per ERROR_LOG_PERIOD_S per kind."""
        self.counters[kind] += 1
        self.last_error[kind] = text
        now = time.monotonic()
        if now - self._last_error_log.get(kind, -np.inf) >= ERROR_LOG_PERIOD_S:
            self._last_error_log[kind] = now
            self.errors_logged[kind] += 1
            self.get_logger().error(f"{text} [{kind}: {self.counters[kind]} so far]")

    def _on_image(self, msg: Image | CompressedImage, info: dict) -> None:
        self.counters["frames_received"] += 1
        self.statistics.on_received(time.monotonic(), info.get("publication_sequence_number"))
        try:
            image_rgb = message_to_rgb8(msg)
        except ImageConversionError as error:
            topic = self._image_sub.topic_name if self._image_sub is not None else "image"
            self._log_error("bad_image", f"frame dropped, bad image on {topic}: {error}")
            return
        config = self._config
        try:
            people = self._on_model_thread(self._pipeline, config, image_rgb)
        except MODEL_ERRORS as error:
            self._log_error("inference_error", f"frame dropped, inference failed: {error}")
            return
        if self.get_parameter("tracking").value:
            stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            people = self._tracker.update(people, stamp_s)
        height, width = image_rgb.shape[:2]
        camera_matrix = self._camera_matrix if self._camera_matrix is not None else default_camera_matrix(
            width, height
        )
        self._add_depth(msg, people, camera_matrix, (height, width))
        self._add_meshes(image_rgb, people, camera_matrix)
        self._publish(msg, image_rgb, people, config, camera_matrix)
        self.counters["frames_processed"] += 1
        latency_ms = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds * 1e-6
        self.statistics.on_processed(time.monotonic(), latency_ms)

    def _publish_diagnostics(self) -> None:
        if not shutdown.may_publish(self):  # stopping: nothing is published any more
            return
        errors = {k: v for k, v in self.counters.items() if k not in ("frames_received", "frames_processed")}
        self._diagnostics_pub.publish(
            diagnostics_message(
                self.statistics,
                time.monotonic(),
                self.get_clock().now().to_msg(),
                self.get_name(),
                f"{self._config.mode}/{self._config.model_name}",
                self._config.device,
                errors,
                float(self.get_parameter("latency_warning_ms").value),
            )
        )

    def _publish(
        self, msg: Image, image_rgb: np.ndarray, people: list[Person], config: PipelineConfig, camera_matrix: np.ndarray
    ) -> None:
        if not shutdown.may_publish(self):  # stopping: nothing is published any more
            return
        height, width = image_rgb.shape[:2]
        keypoint_threshold = float(self.get_parameter("keypoint_threshold").value)
        self._people_pub.publish(
            people_to_msg(people, msg.header, (width, height), config.mode, config.model_name, keypoint_threshold)
        )
        if self._markers_pub.get_subscription_count() > 0:  # RViz listening: markers are not free (meshes)
            marker_depth = float(self.get_parameter("marker_depth").value)
            self._markers_pub.publish(
                people_to_markers(people, msg.header, camera_matrix, keypoint_threshold, marker_depth=marker_depth)
            )
        if self.get_parameter("publish_overlay").value and self._overlay_pub.get_subscription_count() > 0:
            overlay = draw_people(image_rgb, people, keypoint_threshold=keypoint_threshold)
            self._overlay_pub.publish(array_to_image(overlay, "rgb8", msg.header))


def activate(node: PoseNode) -> bool:
    """Configure and activate `node`; False (after logging why) when configuration failed."""
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error("configuration failed; the node stays unconfigured (fix the cause, then configure)")
        return False
    node.trigger_activate()
    return True


def main(argv: list[str] | None = None) -> int:
    """Run pose_node until SIGINT or SIGTERM, then stop cleanly (pose_ros.ros.shutdown) and return 0."""
    shutdown.init(argv if argv is not None else sys.argv)
    node = PoseNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.get_parameter("auto_activate").value and not shutdown.stop_requested():
            activate(node)
        shutdown.spin_until_stopped(executor)
    finally:
        shutdown.stop_nodes(executor, [node])
        shutdown.finish()
    return 0
