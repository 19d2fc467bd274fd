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

Threads (the walk of a frame is in the README's architecture section):
  executor   callbacks only store: the newest image (keep last 1), camera info, depth frames; parameter and
             lifecycle services are answered here while frames are processed (reentrant group: a parameter set
             that loads a model blocks only its own call)
  frames     one dedicated thread runs every 2D model call and the whole frame: one settings snapshot, estimator,
             tracker, depth, mesh attachment, one message per output
  visuals    markers and overlay of the newest frame, built and published beside the frame path
             (pose_ros.ros.newest_only; only while someone listens): the next frame does not wait for them
  meshes     the mesh worker (pose_ros.core.meshing.worker): fits the newest frame's tracked people at most
             mesh_rate_hz, in a child process (one torch thread, nice +10; pose_ros.core.meshing.remote) so that
             fitting never holds this process's interpreter lock; the frame path attaches each track's newest mesh
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.parameter import Parameter
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from pose_ros.core.camera import default_camera_matrix
from pose_ros.core.depth import DepthSettings, StampMatcher, depth_to_metres, keypoints_3d
from pose_ros.core.draw import draw_people
from pose_ros.core.meshing import FittedMesh, MeshConfig, MeshFit, MeshJob, MeshWorker
from pose_ros.core.meshing.remote import RemoteMeshStage
from pose_ros.core.model_cache import ModelCache, estimator_factory, mesh_process
from pose_ros.core.person import Person
from pose_ros.core.pipeline import PipelineConfig, PosePipeline
from pose_ros.core.tracking import PersonTracker, TrackerSettings
from pose_ros.msg import PersonArray
from pose_ros.ros import shutdown
from pose_ros.ros.diagnostics import (
    LATENCY_FROM_RECEIPT,
    LATENCY_FROM_STAMP,
    FrameStatistics,
    StageClock,
    diagnostics_message,
)
from pose_ros.ros.executor import SpinSafeExecutor
from pose_ros.ros.image_conversion import ImageConversionError, image_to_array, message_to_rgb8
from pose_ros.ros.marker_wire import encode_marker_array
from pose_ros.ros.messages import (
    camera_matrix_from_info,
    people_to_markers,
    people_to_msg,
    stamp_nanoseconds,
    stamp_seconds,
)
from pose_ros.ros.newest_only import NewestOnlyThread
from pose_ros.ros.parameters import (
    PARAMETER_NAMES,
    PIPELINE_FIELDS,
    ParameterTypeError,
    check_choice,
    declare_all,
    mesh_config,
    pipeline_config,
)
from pose_ros.ros.transport import ImageOutput, create_image_subscription

OUTPUT_QOS = QoSProfile(depth=5, reliability=QoSReliabilityPolicy.RELIABLE, history=QoSHistoryPolicy.KEEP_LAST)
ERROR_LOG_PERIOD_S = 5.0
VISUALS_WAIT_S = 5.0  # a lifecycle transition waits this long at most for markers and overlay being published
# What loading or running a model may raise for bad configuration or files (reported, never fatal).
MODEL_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError, ImportError)
DEPTH_ENCODINGS = ("16UC1", "32FC1", "mono16")
MESH_NICE = 10  # the mesh process's niceness: on a small CPU the 2D path goes first, meshes get what is left
EXECUTOR_THREADS = 4  # services stay answerable while one thread loads a model for a parameter set


@dataclass(frozen=True)
class FrameSettings:
    """Everything a frame reads from the parameters: one immutable snapshot, taken when the frame starts.

    Built from the parameter values when a change is accepted; a frame never reads a parameter itself.
    """

    pipeline: PipelineConfig
    tracker: TrackerSettings
    tracking: bool
    keypoint_threshold: float
    marker_depth: float
    publish_overlay: bool
    depth: DepthSettings
    depth_sync_tolerance_s: float
    mesh: MeshConfig
    mesh_rate_hz: float
    mesh_max_faces: int
    latency_warning_ms: float

    @classmethod
    def from_values(cls, values: dict[str, object]) -> FrameSettings:
        return cls(
            pipeline=pipeline_config(values),
            tracker=TrackerSettings(
                metric=str(values["tracking_metric"]),
                match_threshold=float(values["tracking_match_threshold"]),
                max_age=int(values["tracking_max_age"]),
            ),
            tracking=bool(values["tracking"]),
            keypoint_threshold=float(values["keypoint_threshold"]),
            marker_depth=float(values["marker_depth"]),
            publish_overlay=bool(values["publish_overlay"]),
            depth=DepthSettings(window=int(values["depth_window"])),
            depth_sync_tolerance_s=float(values["depth_sync_tolerance_s"]),
            mesh=mesh_config(values),
            mesh_rate_hz=float(values["mesh_rate_hz"]),
            mesh_max_faces=int(values["mesh_max_faces"]),
            latency_warning_ms=float(values["latency_warning_ms"]),
        )

    def validate(self) -> None:
        """Raise ValueError naming the first unusable value."""
        self.pipeline.validate()
        self.tracker.validate()
        self.depth.validate()
        self.mesh.validate()

    @property
    def mesh_interval_s(self) -> float:
        return 1.0 / self.mesh_rate_hz if self.mesh_rate_hz > 0 else 0.0


@dataclass(frozen=True)
class FrameOutput:
    """What a frame publishes, assembled once: the input header, its pixels (H, W, 3) uint8 RGB, its people,
    the settings it ran with and the camera matrix (3, 3) its 3D keypoints use."""

    header: Header
    image_rgb: np.ndarray
    people: tuple[Person, ...]
    settings: FrameSettings
    camera_matrix: np.ndarray


def node_executor(context=None) -> SpinSafeExecutor:
    """The executor pose_node needs: several threads, so that services are answered while a parameter set loads
    a model (frames run on the node's own thread either way), without rclpy's busy loop (pose_ros.ros.executor)."""
    return SpinSafeExecutor(num_threads=EXECUTOR_THREADS, context=context)


class PoseNode(LifecycleNode):
    """Human pose estimation on an image topic (see the module docstring for topics and threads)."""

    def __init__(self, node_name: str = "pose_node", models: ModelCache | None = None, **kwargs) -> None:
        """`models`: a cache shared with other pose nodes of this process (one copy of each model; see
        pose_ros.core.model_cache); None: this node loads its own."""
        super().__init__(node_name, **kwargs)
        self._models = models
        # Parameter and lifecycle services in one reentrant group: a set that loads a model (seconds) blocks only
        # itself, gets/describes/state queries are answered meanwhile (with a multi-threaded executor).
        self._service_group = ReentrantCallbackGroup()
        for service in self.services:
            service.callback_group = self._service_group
            self._service_group.add_entity(service)
        self._input_group = MutuallyExclusiveCallbackGroup()  # image, camera info, depth: they only store
        declare_all(self)
        self.counters: Counter[str] = Counter()  # frames_received, frames_processed, and one per error kind
        self.errors_logged: Counter[str] = Counter()  # how often each error kind was actually logged
        self.last_error: dict[str, str] = {}  # the latest message per error kind
        self._last_error_log: dict[str, float] = {}
        self._lock = threading.RLock()  # parameter changes and lifecycle transitions, one at a time
        self._pipeline = self._new_pipeline()
        # Every frame (and so every 2D model call) runs on this one thread: executors hand callbacks to varying
        # threads, and torch called from a new thread each time builds new OpenMP thread teams (2-3x slower).
        self._frame_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose_frames")
        self._visuals = NewestOnlyThread("pose_visuals", self._on_visuals_error)
        self._pending_lock = threading.Lock()
        # the newest image not yet taken by the frame thread (keep last 1), with its time of receipt (monotonic s)
        self._pending: tuple[Image, float] | None = None
        self._frame_scheduled = False
        self._settings = FrameSettings.from_values(self._values())
        self._camera_matrix: np.ndarray | None = None
        self._depth_camera_matrix: np.ndarray | None = None
        self._depth_frames: StampMatcher[Image] = StampMatcher(self._settings.depth_sync_tolerance_s)
        self._subscriptions_active: list = []
        self._image_sub = None
        self._people_pub = self._markers_pub = self._overlay_pub = None
        self._tracker = PersonTracker(self._settings.tracker)  # used by the frame thread only
        self._tracked_pipeline = self._settings.pipeline  # the pipeline the tracker's tracks come from
        self._mesh_worker: MeshWorker | None = None
        self._last_mesh_ns = -1  # untracked meshing: when the last frame was meshed (monotonic ns)
        # Offline processing (pose_ros.tools.process_bag) sets this: tracked meshes are fitted on the frame itself,
        # waited for, on the frames due by mesh_rate_hz in stamp time (online they are fitted beside the path).
        self.meshes_in_step = False
        self._last_mesh_stamp_ns = -1
        self.statistics = FrameStatistics()
        self._statistics_lock = threading.Lock()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # A wall-clock (steady) timer: under use_sim_time a ROS timer would follow /clock (a paused or fast replay).
        self._diagnostics_timer = self.create_timer(
            1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME)
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _new_pipeline(self) -> PosePipeline:
        return PosePipeline() if self._models is None else PosePipeline(estimator_factory(self._models))

    def _remote_mesh_stage(self, config: MeshConfig) -> RemoteMeshStage:
        """The mesh stage in its own process, not waited for; with shared models, a session of the process the
        other cameras use (one body model)."""
        if self._models is None:
            return RemoteMeshStage(config, nice=MESH_NICE, wait=False)
        return RemoteMeshStage(config, wait=False, process=mesh_process(self._models, config, MESH_NICE))

    @property
    def settings(self) -> FrameSettings:
        """The settings the next frame starts with."""
        return self._settings

    @property
    def mesh_worker(self) -> MeshWorker | None:
        return self._mesh_worker

    def destroy_node(self) -> None:
        with self._pending_lock:
            self._pending = None
        self._frame_thread.shutdown(wait=True)
        self._visuals.stop()
        if self._mesh_worker is not None:
            self._mesh_worker.close()
        super().destroy_node()

    # ----- parameters -------------------------------------------------------------------------------------------
    def _values(self) -> dict[str, object]:
        return {name: self.get_parameter(name).value for name in PARAMETER_NAMES}

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Validate a change as a whole; a new model (2D or mesh) is loaded before the change is accepted, on this
        service thread, while frames keep flowing on the old model. Applied from the next frame on."""
        with self._lock:
            values = self._values() | {p.name: p.value for p in parameters}
            reasons = [reason for p in parameters if (reason := check_choice(p.name, p.value))]
            if reasons:
                return self._reject_parameters(reasons[0])
            settings, old = FrameSettings.from_values(values), self._settings
            mesh_worker = None
            try:
                settings.validate()
                if settings.pipeline != old.pipeline and self._is_configured():
                    self._pipeline.estimator(settings.pipeline)  # load now: a bad model is rejected here
            except MODEL_ERRORS as error:
                return self._reject_parameters(str(error))
            if settings.mesh != old.mesh and self._is_configured():
                mesh_worker = self._start_mesh_worker(settings.mesh)  # a missing mesh model is reported once
            if settings.pipeline != old.pipeline:
                changed = {
                    f: getattr(settings.pipeline, f)
                    for f in PIPELINE_FIELDS
                    if getattr(settings.pipeline, f) != getattr(old.pipeline, f)
                }
                self.get_logger().info(f"parameters changed, effective from the next frame: {changed}")
            if settings.mesh != old.mesh and self._is_configured():
                self._replace_mesh_worker(mesh_worker)
            self._settings = settings
            return SetParametersResult(successful=True)

    def _reject_parameters(self, reason: str) -> SetParametersResult:
        self.counters["rejected_parameter"] += 1
        self.last_error["rejected_parameter"] = reason
        self.get_logger().warning(f"parameter change rejected: {reason}")
        return SetParametersResult(successful=False, reason=reason)

    # ----- lifecycle ---------------------------------------------------------------------------------------------
    def _is_configured(self) -> bool:
        return self._people_pub is not None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            config = self._settings.pipeline
            meshes = None  # the mesh process loads its model while this one loads the 2D model
            if self._settings.mesh.resolved_model() != "none":
                with contextlib.suppress(*MODEL_ERRORS):  # (reported by _start_mesh_worker)
                    self._settings.mesh.validate()
                    meshes = self._remote_mesh_stage(self._settings.mesh)
            try:
                started = time.perf_counter()
                self._pipeline.estimator(config)
                blank = np.zeros((config.input_height, config.input_width, 3), np.uint8)
                self._frame_thread.submit(self._pipeline, config, blank).result()  # warm: the first frame is not slow
                self.get_logger().info(
                    f"model {config.model_name} ({config.mode}) ready on device {config.device} "
                    f"in {time.perf_counter() - started:.1f} s"
                )
            except MODEL_ERRORS as error:
                self._log_error("model_load", f"cannot load the model: {error}")
                if meshes is not None:
                    meshes.close()
                return TransitionCallbackReturn.FAILURE
            self._replace_mesh_worker(self._start_mesh_worker(self._settings.mesh, meshes))
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
        depth_qos = QoSProfile(depth=5, history=QoSHistoryPolicy.KEEP_LAST, reliability=policy)
        group = self._input_group
        transport = self.get_parameter("image_transport").value
        self._image_sub = create_image_subscription(
            self, "image", transport, self._on_image, image_qos, callback_group=group
        )
        self._subscriptions_active = [
            self._image_sub,
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, image_qos, callback_group=group),
            self.create_subscription(Image, "depth_image", self._on_depth_image, depth_qos, callback_group=group),
            self.create_subscription(
                CameraInfo, "depth_camera_info", self._on_depth_camera_info, image_qos, callback_group=group
            ),
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
        self._wait_for_frames()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            self._wait_for_frames()
            for publisher in (self._people_pub, self._markers_pub):
                if publisher is not None:
                    self.destroy_publisher(publisher)
            if self._overlay_pub is not None:
                self._overlay_pub.destroy()
            self._people_pub = self._markers_pub = self._overlay_pub = None
            self._pipeline = self._new_pipeline()
            self._replace_mesh_worker(None)
            return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def _wait_for_frames(self) -> None:
        """Drop the waiting image and wait until the frame thread, then the visuals thread, is idle."""
        with self._pending_lock:
            self._pending = None
        self._frame_thread.submit(lambda: None).result()
        self._visuals.wait_idle(VISUALS_WAIT_S)

    def _start_mesh_worker(self, config: MeshConfig, stage: RemoteMeshStage | None = None) -> MeshWorker | None:
        """A worker running the mesh stage `config` asks for (`stage`: its process, already starting); None for
        "none" or (said once) when it cannot load."""
        model = config.resolved_model()
        if model == "none":
            return None
        try:
            started = time.perf_counter()
            config.validate()
            if stage is None:
                stage = self._remote_mesh_stage(config)  # own process: fits never hold our GIL
            stage.wait_ready()
        except MODEL_ERRORS as error:
            self._log_error("mesh_model_unavailable", f"mesh model {model} unavailable, publishing 2D only: {error}")
            return None
        self.get_logger().info(f"mesh model {model} ready in {time.perf_counter() - started:.1f} s")
        return MeshWorker(stage, nice=0, warm=False, on_error=self._on_mesh_error)

    def _replace_mesh_worker(self, worker: MeshWorker | None) -> None:
        old, self._mesh_worker = self._mesh_worker, worker
        if old is not None:
            threading.Thread(target=old.close, name="pose_meshes_close", daemon=True).start()

    def _on_mesh_error(self, error: Exception) -> None:
        self._log_error("mesh_error", f"mesh stage failed on a frame: {error}")

    # ----- input callbacks (executor threads: store only) ------------------------------------------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_matrix = camera_matrix_from_info(msg)

    def _on_depth_camera_info(self, msg: CameraInfo) -> None:
        self._depth_camera_matrix = camera_matrix_from_info(msg)

    def _on_depth_image(self, msg: Image) -> None:
        """Keep recent depth frames; they are decoded only when a colour frame matches one."""
        self._depth_frames.add(stamp_seconds(msg.header.stamp), msg)

    def _on_image(self, msg: Image | CompressedImage, info: dict) -> None:
        """Hand the image to the frame thread; an image still waiting there is replaced (keep last 1)."""
        self.counters["frames_received"] += 1
        with self._statistics_lock:
            self.statistics.on_received(time.monotonic(), info.get("publication_sequence_number"))
        with self._pending_lock:
            if self._pending is not None:  # replaced before the frame thread took it: a keep-last-1 drop
                with self._statistics_lock:
                    self.statistics.dropped_in_queue += 1
            self._pending = (msg, time.monotonic())
            if self._frame_scheduled:
                return
            self._frame_scheduled = True
        self._frame_thread.submit(self._drain)

    def _log_error(self, kind: str, text: str) -> None:
        """Count an error of `kind` and log it, at most once per ERROR_LOG_PERIOD_S per kind."""
        self.counters[kind] += 1
        self.last_error[kind] = text
        now = time.monotonic()
        if now - self._last_error_log.get(kind, -np.inf) >= ERROR_LOG_PERIOD_S:
            self._last_error_log[kind] = now
            self.errors_logged[kind] += 1
            self.get_logger().error(f"{text} [{kind}: {self.counters[kind]} so far]")

    # ----- the frame thread -------------------------------------------------------------------------------------
    def _drain(self) -> None:
        """Process the newest waiting image until none is waiting."""
        while True:
            with self._pending_lock:
                taken, self._pending = self._pending, None
                if taken is None:
                    self._frame_scheduled = False
                    return
            try:
                self._process(*taken)
            except Exception as error:
                self._log_error("frame_error", f"frame dropped: {type(error).__name__}: {error}")

    def process_now(self, msg: Image | CompressedImage, outputs: tuple, camera_info: CameraInfo | None = None) -> None:
        """Run one frame through the frame path on the frame thread and wait for it: offline processing
        (pose_ros.tools.process_bag). `outputs` (people, markers, overlay) are publisher-like sinks (`publish(msg)`,
        `get_subscription_count()`) taking the messages instead of the node's publishers (configured, not active);
        `camera_info`, when given, is taken first as if it had arrived on camera_info."""
        if camera_info is not None:
            self._on_camera_info(camera_info)
        self._frame_thread.submit(self._process, msg, None, outputs).result()

    def _process(
        self, msg: Image | CompressedImage, received_s: float | None = None, outputs: tuple | None = None
    ) -> None:
        """One frame, one result: settings snapshot → people → tracks → depth → meshes → each message once."""
        settings = self._settings  # the one snapshot this frame reads
        people_pub, markers_pub, overlay_pub = outputs or (self._people_pub, self._markers_pub, self._overlay_pub)
        if people_pub is None:
            return  # cleaned up meanwhile
        clock = StageClock()
        try:
            image_rgb = message_to_rgb8(msg)
        except ImageConversionError as error:
            topic = self._image_sub.topic_name if self._image_sub is not None else "image"
            self._log_error("bad_image", f"frame dropped, bad image on {topic}: {error}")
            return
        clock.lap("decode")  # the image message to RGB pixels (a JPEG decoded)
        try:
            people = self._pipeline(settings.pipeline, image_rgb)  # filtered, best first, ids 0..N-1
        except MODEL_ERRORS as error:
            self._log_error("inference_error", f"frame dropped, inference failed: {error}")
            return
        clock.lap("estimate")
        stamp_ns = stamp_nanoseconds(msg.header.stamp)
        if settings.tracking:
            people = self._track(people, stamp_ns * 1e-9, settings)
            clock.lap("track")
        image_hw = image_rgb.shape[:2]  # a CompressedImage has no width/height fields
        camera_matrix = self._camera_matrix
        if camera_matrix is None:
            camera_matrix = default_camera_matrix(image_hw[1], image_hw[0])
        measured = self._depth_keypoints(msg, people, camera_matrix, settings, image_hw)
        people = [
            p if xyz is None else replace(p, keypoints_3d=xyz, keypoints_3d_source="depth")
            for p, xyz in zip(people, measured, strict=True)
        ]
        clock.lap("depth")
        meshes = self._meshes(image_rgb, people, camera_matrix, stamp_ns, settings)
        people = [self._with_mesh(p, mesh) for p, mesh in zip(people, meshes, strict=True)]
        clock.lap("mesh")
        if not self.context.ok():
            return  # shutting down: nothing is published after shutdown begins
        frame = FrameOutput(msg.header, image_rgb, tuple(people), settings, camera_matrix)
        self._publish(frame, people_pub, markers_pub, overlay_pub,
                      beside=outputs is None)  # offline (process_bag): every frame's visuals, in the path
        clock.lap("publish")  # people (and offline markers and overlay)
        self.counters["frames_processed"] += 1
        if self.get_clock().ros_time_is_active and received_s is not None:  # use_sim_time: stamps are not wall time
            latency_ms = (time.monotonic() - received_s) * 1e3  # receipt to publish, wall clock
        else:
            latency_ms = (self.get_clock().now().nanoseconds - stamp_ns) * 1e-6  # image stamp to publish
        with self._statistics_lock:
            self.statistics.on_processed(time.monotonic(), latency_ms, clock.stage_ms)

    def _track(self, people: list[Person], stamp_s: float, settings: FrameSettings) -> list[Person]:
        """Track ids for `people`; the tracker restarts when its settings or the 2D pipeline changed."""
        if settings.tracker != self._tracker.settings:
            self._tracker = PersonTracker(settings.tracker)
        elif settings.pipeline != self._tracked_pipeline:
            self._tracker.reset()  # another model may use another layout and other scores
        self._tracked_pipeline = settings.pipeline
        return self._tracker.update(people, stamp_s)

    def _depth_keypoints(
        self,
        msg: Image | CompressedImage,
        people: list[Person],
        camera_matrix: np.ndarray,
        settings: FrameSettings,
        image_hw: tuple[int, int],
    ) -> list[np.ndarray | None]:
        """Per person the (K, 3) keypoints measured in the depth frame matching `msg`'s stamp (None without one)."""
        none: list[np.ndarray | None] = [None] * len(people)
        if not people:
            return none
        self._depth_frames.tolerance_s = settings.depth_sync_tolerance_s
        match = self._depth_frames.match(stamp_seconds(msg.header.stamp))
        if match is None:
            return none
        depth_msg = match[1]
        if depth_msg.encoding not in DEPTH_ENCODINGS:
            self._log_error("bad_depth", f"depth image ignored: encoding {depth_msg.encoding} is not 16UC1 or 32FC1")
            return none
        try:
            depth_m = depth_to_metres(image_to_array(depth_msg))
        except ImageConversionError as error:
            self._log_error("bad_depth", f"depth image ignored: {error}")
            return none
        depth_k = self._depth_camera_matrix
        if depth_k is None and depth_m.shape[:2] != image_hw:
            self._log_error("bad_depth", "depth image of another size needs depth_camera_info; ignored")
            return none
        return [
            keypoints_3d(depth_m, p.keypoints_xy, p.confidences, camera_matrix, depth_k, settings.depth) for p in people
        ]

    def _meshes(
        self,
        image_rgb: np.ndarray,
        people: list[Person],
        camera_matrix: np.ndarray,
        stamp_ns: int,
        settings: FrameSettings,
    ) -> list[FittedMesh | None]:
        """Per person the newest mesh of its track (tracked; fitted beside this path, never waited for), or, without
        tracking, a mesh fitted on this very frame when it is due (at most mesh_rate_hz; this frame waits)."""
        worker = self._mesh_worker
        none: list[FittedMesh | None] = [None] * len(people)
        if worker is None or not people:
            return none
        live = frozenset(track.id for track in self._tracker.tracks if track.id >= 0) if settings.tracking else None
        job = MeshJob(
            stamp_ns,
            image_rgb,
            tuple(people),
            camera_matrix,
            settings.mesh_max_faces,
            settings.mesh_interval_s,
            live or frozenset(),
        )
        if settings.tracking:
            if not self.meshes_in_step:
                worker.submit(job)
            elif self._last_mesh_stamp_ns < 0 or stamp_ns - self._last_mesh_stamp_ns >= settings.mesh_interval_s * 1e9:
                self._last_mesh_stamp_ns = stamp_ns  # offline: this frame is due, its meshes are fitted now
                try:
                    worker.fit_tracked(job)
                except MODEL_ERRORS as error:
                    self._on_mesh_error(error)
            latest = worker.latest()
            return [latest.get(p.id) if p.tracked else None for p in people]
        now_ns = time.monotonic_ns()
        if self._last_mesh_ns >= 0 and now_ns - self._last_mesh_ns < settings.mesh_interval_s * 1e9:
            return none
        self._last_mesh_ns = now_ns
        try:
            fits: list[MeshFit | None] = worker.run_now(job)
        except MODEL_ERRORS as error:
            self._on_mesh_error(error)
            return none
        return [None if fit is None else FittedMesh(fit, stamp_ns, p.id) for p, fit in zip(people, fits, strict=True)]

    @staticmethod
    def _with_mesh(person: Person, mesh: FittedMesh | None) -> Person:
        """`person` with its body model (and the model's 3D keypoints where no measured ones exist)."""
        if mesh is None:
            return person
        fields: dict[str, object] = {"body_model": mesh.fit.body_model, "body_model_stamp_ns": mesh.stamp_ns}
        if person.keypoints_3d is None and mesh.fit.keypoints_3d is not None:
            fields |= {"keypoints_3d": mesh.fit.keypoints_3d, "keypoints_3d_source": "body_model"}
        return replace(person, **fields)

    def _publish(self, frame: FrameOutput, people_pub, markers_pub, overlay_pub, beside: bool = True) -> None:
        """people now; markers and overlay (for listeners only) on the visuals thread when `beside`, else now."""
        if not shutdown.may_publish(self):  # stopping: nothing is published any more
            return
        height, width = frame.image_rgb.shape[:2]
        config = frame.settings.pipeline
        people_pub.publish(people_to_msg(frame.people, frame.header, (width, height), config.mode, config.model_name,
                                         frame.settings.keypoint_threshold))  # fmt: skip
        markers = markers_pub.get_subscription_count() > 0  # RViz listening: markers are not free (meshes)
        overlay = frame.settings.publish_overlay and overlay_pub.get_subscription_count() > 0
        if not (markers or overlay):
            return
        job = partial(self._publish_visuals, frame, markers_pub if markers else None, overlay_pub if overlay else None)
        if beside:
            self._visuals.submit(job)
        else:
            job()

    def _publish_visuals(self, frame: FrameOutput, markers_pub, overlay_pub) -> None:
        """A frame's markers and overlay, each where a publisher is given; its time (wall, CPU) to the statistics."""
        if not shutdown.may_publish(self):
            return
        started_s, started_cpu_s = time.perf_counter(), time.thread_time()
        settings, threshold = frame.settings, frame.settings.keypoint_threshold
        if markers_pub is not None:
            markers = people_to_markers(frame.people, frame.header, frame.camera_matrix, threshold,
                                        marker_depth=settings.marker_depth)  # fmt: skip
            markers_pub.publish(encode_marker_array(markers))  # serialized here: meshes are large point arrays
        if overlay_pub is not None:
            overlay_pub.publish_rgb(draw_people(frame.image_rgb, frame.people, keypoint_threshold=threshold),
                                    frame.header)  # fmt: skip
        with self._statistics_lock:
            self.statistics.on_visuals(time.monotonic(), (time.perf_counter() - started_s) * 1e3,
                                       (time.thread_time() - started_cpu_s) * 1e3)  # fmt: skip

    def _on_visuals_error(self, error: Exception) -> None:
        self._log_error("publish_error", f"markers/overlay not published: {type(error).__name__}: {error}")

    def _publish_diagnostics(self) -> None:
        if not shutdown.may_publish(self):  # stopping: nothing is published any more
            return
        settings = self._settings
        counters = dict(self.counters)
        errors = {k: v for k, v in counters.items() if k not in ("frames_received", "frames_processed")}
        with self._statistics_lock:
            message = diagnostics_message(
                self.statistics,
                time.monotonic(),
                self.get_clock().now().to_msg(),
                self.get_fully_qualified_name().lstrip("/"),  # "front/pose_node" per camera
                f"{settings.pipeline.mode}/{settings.pipeline.model_name}",
                settings.pipeline.device,
                errors,
                settings.latency_warning_ms,
                LATENCY_FROM_RECEIPT if self.get_clock().ros_time_is_active else LATENCY_FROM_STAMP,
                self._visuals.dropped,
            )
        self._diagnostics_pub.publish(message)


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
    try:
        node = PoseNode()
    except ParameterTypeError as error:
        print(f"pose_node: {error}", file=sys.stderr)
        shutdown.finish()
        return 2
    executor = node_executor()
    executor.add_node(node)
    try:
        if node.get_parameter("auto_activate").value and not shutdown.stop_requested():
            activate(node)
        shutdown.spin_until_stopped(executor)
    finally:
        shutdown.stop_nodes(executor, [node])
        shutdown.finish()
    return 0
