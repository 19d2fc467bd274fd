"""pose_viewer: a live browser view of pose_node's results, for machines without RViz.

    pose_viewer                                  # then open http://localhost:8090
    pose_viewer --ros-args -p port:=8091         # another port
    pose_launcher --source vtest.avi --viewer    # pose_node + video + viewer in one process
    ros2 launch pose_ros pose.launch.py viewer:=true

The page (served by viser, https://viser.studio: its browser client ships inside the Python package, no CDN)
shows a 3D scene in the camera's optical frame (x right, y down, z forward) with each person's skeleton,
joints and body mesh from `markers` (colours by track id, as in RViz), the overlay image, and a status
panel (pose_node's FPS, latency, mode, model, people) from `people` and `/diagnostics`.

The overlay comes raw (`overlay`), scaled to `overlay_width` and JPEG-encoded here: on pose_node's machine
the cheapest way (pose_node only draws it and hands over the pixels; encoding a full-size JPEG would cost it
~1 ms more a frame). With `overlay_transport: compressed` (a viewer on another computer than pose_node:
a 15x smaller message over the network) it takes pose_node's `overlay/compressed` and sends the page that JPEG
as it is, nothing decoded or re-encoded here.

It cannot slow pose_node down: every subscription to a per-frame topic is best effort, keep last 1, and takes the
serialized message; a render thread deserializes only the newest message of each topic, at most `max_rate_hz`
times a second, and drops the rest. `markers` and `overlay` (which pose_node builds only for subscribers) are
subscribed only while a browser has the page open. With nothing publishing `people`, the page says so and waits.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, fields
from functools import partial

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import Marker, MarkerArray

from pose_ros.msg import PersonArray
from pose_ros.ros.diagnostics import stage_times
from pose_ros.ros.image_conversion import ImageConversionError, message_to_rgb8, viewable_jpeg
from pose_ros.ros.marker_wire import WireMarker, decode_marker_array
from pose_ros.ros.parameters import ParameterSpec, declare_specs
from pose_ros.ros.transport import transport_topic

# Never back-pressure the publisher: newest sample only, no retransmissions.
VIEWER_QOS = QoSProfile(depth=1, history=QoSHistoryPolicy.KEEP_LAST, reliability=QoSReliabilityPolicy.BEST_EFFORT)
STATUS_PERIOD_S = 0.5
OVERLAY_TRANSPORTS = ("raw", "compressed")  # compressed: pose_node's overlay/compressed, forwarded as it is


@dataclass(frozen=True)
class ViewerSettings:
    """pose_viewer's parameters (see VIEWER_PARAMETERS for their descriptions)."""

    host: str = "127.0.0.1"
    port: int = 8090
    max_rate_hz: float = 10.0
    show_overlay: bool = True
    overlay_transport: str = "raw"
    overlay_width: int = 480
    line_width_px: float = 3.0
    stale_after_s: float = 3.0

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if not 0.5 <= self.max_rate_hz <= 60.0:
            raise ValueError(f"max_rate_hz must be in 0.5..60, got {self.max_rate_hz}")
        if self.overlay_transport not in OVERLAY_TRANSPORTS:
            raise ValueError(f"overlay_transport must be one of {', '.join(OVERLAY_TRANSPORTS)}, "
                             f"got {self.overlay_transport!r}")
        if not 64 <= self.overlay_width <= 1920:
            raise ValueError(f"overlay_width must be in 64..1920, got {self.overlay_width}")
        if not 0.5 <= self.line_width_px <= 20.0:
            raise ValueError(f"line_width_px must be in 0.5..20, got {self.line_width_px}")
        if not 0.5 <= self.stale_after_s <= 60.0:
            raise ValueError(f"stale_after_s must be in 0.5..60, got {self.stale_after_s}")


_D = ViewerSettings()
VIEWER_PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("host", _D.host, "address the web page is served on (0.0.0.0: every interface)", read_only=True),
    ParameterSpec("port", _D.port, "TCP port of the web page (http://host:port)", int_range=(1, 65535, 1),
                  read_only=True),
    ParameterSpec("max_rate_hz", _D.max_rate_hz, "most page updates per second; newer frames replace older ones",
                  float_range=(0.5, 60.0), read_only=True),
    ParameterSpec("show_overlay", _D.show_overlay, "show the overlay image (subscribing makes pose_node draw it)",
                  read_only=True),
    ParameterSpec("overlay_transport", _D.overlay_transport,
                  "raw: the overlay, scaled and JPEG-encoded here (cheapest beside pose_node); compressed: pose_node's "
                  "overlay/compressed JPEG, sent as it is (pose_node on another computer)", OVERLAY_TRANSPORTS,
                  read_only=True),
    ParameterSpec("overlay_width", _D.overlay_width,
                  "width (pixels) a raw overlay is scaled to for the page (overlay/compressed is sent as it is)",
                  int_range=(64, 1920, 1), read_only=True),
    ParameterSpec("line_width_px", _D.line_width_px, "skeleton line width on screen (pixels)",
                  float_range=(0.5, 20.0), read_only=True),
    ParameterSpec("stale_after_s", _D.stale_after_s,
                  "the page reports no results after this many seconds without (or 3 result intervals if longer)",
                  float_range=(0.5, 60.0), read_only=True),
)


class PortInUseError(RuntimeError):
    """The viewer's TCP port is taken by another program."""


def port_in_use_message(host: str, port: int) -> str:
    return (
        f"port {port} on {host} is already in use (another pose_viewer or web server?); choose a free port with "
        f"the parameter `port`, e.g. `pose_viewer --ros-args -p port:={port + 1}`"
    )


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError unless a server can listen on (host, port) (bound as asyncio servers bind)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise PortInUseError(port_in_use_message(host, port)) from error


def start_server(host: str, port: int):
    """A viser server listening on exactly (host, port); PortInUseError if another program has it."""
    check_port_free(host, port)
    import viser  # after the check: viser would otherwise print its banner for a server it then moves

    server = viser.ViserServer(host=host, port=port, verbose=False)
    if server.get_port() != port:  # lost a race for the port: viser silently took the next one
        server.stop()
        raise PortInUseError(port_in_use_message(host, port))
    return server


class LatestMessage:
    """The newest serialized message of one topic; an unread message replaced by a newer one counts as dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: bytes | None = None
        self.received_at_s: float | None = None  # time.monotonic() of the newest message
        self.intervals_s: deque[float] = deque(maxlen=5)  # between the last messages
        self.dropped = 0

    def put(self, data: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            if self._data is not None:
                self.dropped += 1
            self._data = data
            if self.received_at_s is not None:
                self.intervals_s.append(now - self.received_at_s)
            self.received_at_s = now

    def take(self) -> bytes | None:
        with self._lock:
            data, self._data = self._data, None
            return data


def marker_points(marker: WireMarker) -> np.ndarray:
    """(N, 3) float32 points of a marker, moved by the marker's pose into its header frame."""
    points = marker.point_array().astype(np.float32)
    x, y, z, w = marker.orientation
    if (x, y, z) != (0.0, 0.0, 0.0):
        rotation = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ], np.float32)  # fmt: skip
        points = points @ rotation.T
    return points + np.array(marker.position, np.float32)


def marker_rgb(marker: WireMarker) -> tuple[int, int, int]:
    return tuple(round(255 * min(max(v, 0.0), 1.0)) for v in marker.color[:3])


def fitted_fov_y(image_size: tuple[int, int], focal_px: float, view_aspect: float) -> float:
    """Vertical field of view (radians) of a view from the camera, with aspect `view_aspect` (width / height),
    that shows the whole image of `image_size` (width, height) pixels taken with focal length `focal_px`."""
    width, height = image_size
    half_height = max(height / 2.0, width / 2.0 / max(view_aspect, 1e-3))
    return 2.0 * float(np.arctan2(half_height, focal_px))


def status_markdown(state: dict[str, str]) -> str:
    """The status panel's markdown from a dict of figures (missing ones shown as '–')."""
    lines = [f"**{state['headline']}**", ""]
    for label, key in (("mode", "mode"), ("model", "model"), ("FPS", "fps"), ("latency p50", "latency"),
                       ("frame time p50", "stages"), ("people", "people"), ("viewer", "viewer")):
        lines.append(f"- {label}: `{state.get(key) or '–'}`")
    return "\n".join(lines)


class PoseViewer(Node):
    """ROS node + viser web server; see the module docstring. Raises PortInUseError when `port` is taken."""

    def __init__(self, node_name: str = "pose_viewer", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        try:
            declare_specs(self, VIEWER_PARAMETERS)
            self.settings = ViewerSettings(
                **{f.name: self.get_parameter(f.name).value for f in fields(ViewerSettings)}
            )
            self.settings.validate()
            self.server = start_server(self.settings.host, self.settings.port)
        except (PortInUseError, ValueError):
            Node.destroy_node(self)  # nothing else was started
            raise
        self._setup_page()
        self.server.on_client_connect(self._fit_view)
        # markers and overlay cost pose_node work (it builds them only for subscribers): taken only while a
        # browser shows the page (see _follow_browsers). Key -> (topic, type); the overlay in the configured form.
        self._page_topics: dict[str, tuple[str, type]] = {"markers": ("markers", MarkerArray)}
        self._overlay_key: str | None = None
        if self.settings.show_overlay and self.settings.overlay_transport == "compressed":
            self._overlay_key = "overlay/compressed"
            self._page_topics[self._overlay_key] = (transport_topic(self, "overlay", "compressed"), CompressedImage)
        elif self.settings.show_overlay:
            self._overlay_key = "overlay"
            self._page_topics[self._overlay_key] = ("overlay", Image)
        self._latest = {key: LatestMessage() for key in ("people", "camera_info", *self._page_topics)}
        self._diagnostics: dict[str, str] = {}
        self._fy: float | None = None
        self._image_size: tuple[int, int] | None = None
        self._scene: dict[str, tuple[str, object]] = {}  # scene name -> (kind, viser handle) the browsers have
        self._meshes_shown: dict[str, tuple] = {}  # scene name -> what the browsers have (content hash, colour)
        self._people: PersonArray | None = None
        self.frames_shown = 0
        self.create_subscription(PersonArray, "people", self._latest["people"].put, VIEWER_QOS, raw=True)
        # camera_info comes with every camera frame (30 Hz): kept serialized, read with the status (2 Hz)
        self.create_subscription(CameraInfo, "camera_info", self._latest["camera_info"].put, VIEWER_QOS, raw=True)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._page_subscriptions: dict[str, object] = {}  # key of self._page_topics -> subscription
        self.create_timer(STATUS_PERIOD_S, self._follow_browsers)
        self._running = True
        self._thread = threading.Thread(target=self._render_loop, name="pose_viewer_render", daemon=True)
        self._thread.start()
        self.get_logger().info(f"pose_viewer: open http://{self._display_host()}:{self.settings.port} in a browser")

    # --- page -------------------------------------------------------------------------------------------------
    def _display_host(self) -> str:
        return "localhost" if self.settings.host in ("0.0.0.0", "127.0.0.1", "::", "::1") else self.settings.host

    def _setup_page(self) -> None:
        server = self.server
        server.gui.configure_theme(control_width="large", show_share_button=False)
        server.gui.main_panel.dock_right()  # the 3D view keeps the rest of the page
        server.scene.set_up_direction("-y")  # camera optical frame: y down, z forward
        # no shadow maps: extra render passes per frame that show nothing useful here (browsers without a GPU
        # render in software; every update renders frames for a moment)
        server.scene.configure_default_lights(enabled=True, cast_shadow=False)
        server.initial_camera.position = (0.0, 0.0, 0.0)
        server.initial_camera.look_at = (0.0, 0.0, 2.0)
        server.initial_camera.up = (0.0, -1.0, 0.0)
        self._status = server.gui.add_markdown(status_markdown({"headline": "starting"}))
        self._overlay = None
        if self.settings.show_overlay:
            self._overlay = server.gui.add_image(
                np.full((3 * self.settings.overlay_width // 4, self.settings.overlay_width, 3), 255, np.uint8),
                label="overlay", format="jpeg", jpeg_quality=80,
            )
        server.gui.add_markdown(
            "3D: camera optical frame, seen from the camera (drag to orbit, *Reset View* to come back). "
            "Colours: track ids, as in RViz."
        )

    # --- ROS callbacks (executor thread): store, never render ---------------------------------------------------
    def _follow_browsers(self) -> None:
        """Subscribe to markers and overlay while at least one browser is connected, else unsubscribe."""
        browsers = len(self.server.get_clients())
        if browsers and not self._page_subscriptions:
            self._page_subscriptions = {
                key: self.create_subscription(msg_type, topic, self._latest[key].put, VIEWER_QOS, raw=True)
                for key, (topic, msg_type) in self._page_topics.items()
            }
        elif not browsers and self._page_subscriptions:
            for subscription in self._page_subscriptions.values():
                self.destroy_subscription(subscription)
            self._page_subscriptions = {}

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": pose estimation"):
                self._diagnostics = {kv.key: kv.value for kv in status.values}
                self._diagnostics["received_at_s"] = str(time.monotonic())

    # --- render thread --------------------------------------------------------------------------------------------
    def _render_loop(self) -> None:
        period_s = 1.0 / self.settings.max_rate_hz
        next_status_s = 0.0
        while self._running:
            started = time.monotonic()
            try:
                self._render_once()
                if started >= next_status_s:
                    next_status_s = started + STATUS_PERIOD_S
                    self._update_status()
            except Exception as error:  # one bad message must not stop the page
                self.get_logger().error(f"pose_viewer: could not show a message: {error}", throttle_duration_sec=5.0)
            time.sleep(max(0.0, period_s - (time.monotonic() - started)))

    def _render_once(self) -> None:
        markers_data = self._latest["markers"].take()
        overlay_data = self._latest[self._overlay_key].take() if self._overlay_key else None
        with self.server.atomic():
            if markers_data is not None:
                self._show_markers(decode_marker_array(markers_data))
            if overlay_data is not None:
                self._show_overlay(deserialize_message(overlay_data, self._page_topics[self._overlay_key][1]))
        if markers_data is not None or overlay_data is not None:
            self.frames_shown += 1
            self.server.flush()

    def _update_camera(self, width: int, height: int) -> None:
        """When the image size changes: every page's view from the camera shows the whole image."""
        if (width, height) == self._image_size or height == 0:
            return
        self._image_size = (width, height)
        self.server.initial_camera.fov = fitted_fov_y(self._image_size, self._focal_px(), 4 / 3)
        self._fit_views()

    def _focal_px(self) -> float:
        """fy from camera_info, else pose_node's default intrinsics (fx = fy = max(W, H))."""
        return self._fy or float(max(self._image_size))

    def _fit_view(self, client) -> None:
        """Look from the camera with a field of view that fits the whole image into this browser's 3D view."""
        if self._image_size is None or client.camera.image_width <= 0 or client.camera.image_height <= 0:
            return  # the browser has not reported its view size yet: the status tick fits it later
        aspect = client.camera.image_width / client.camera.image_height
        fov = fitted_fov_y(self._image_size, self._focal_px(), aspect)
        if abs(client.camera.fov - fov) > 1e-4:
            client.camera.fov = fov

    def _fit_views(self) -> None:
        """Every page's view fitted again: a browser reports its view size (and may echo an older field of view)
        only after it connected, so a fit made at connection time alone can be lost. Viewing controls change the
        camera's pose, not its field of view, so this never undoes a user's orbit."""
        for client in self.server.get_clients().values():
            self._fit_view(client)

    def _show_markers(self, markers: list[WireMarker]) -> None:
        """Make the 3D scene show a frame's markers (pose_node's arrays start with DELETEALL). An object already
        in the scene is updated in place (only what changed goes to the browsers); a mesh whose triangles did not
        change since the last frame (meshes are refitted a few times a second) is not sent again. Point markers
        (every person's joints) of one size (to the millimetre) become one point cloud with per-point colours."""
        scene = self.server.scene
        width = self.settings.line_width_px
        names: set[str] = set()
        clouds: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}  # point size -> [(points, colour)]
        for marker in markers:
            if marker.action == Marker.DELETEALL:
                names.clear()
                clouds.clear()
                continue
            if marker.action != Marker.ADD:
                continue
            name = f"/markers/{marker.ns or 'default'}/{marker.id}"
            points = marker_points(marker)
            if len(points) == 0:
                continue
            color = np.array(marker_rgb(marker), np.uint8)
            if marker.type in (Marker.LINE_LIST, Marker.LINE_STRIP):
                segments = (np.stack([points[:-1], points[1:]], axis=1) if marker.type == Marker.LINE_STRIP
                            else points[: len(points) // 2 * 2].reshape(-1, 2, 3))  # fmt: skip
                create = partial(scene.add_line_segments, name, segments, colors=color, thickness=width,
                                 thickness_units="screen")  # fmt: skip
                self._put(name, "lines", create, points=segments, colors=color)
            elif marker.type in (Marker.SPHERE_LIST, Marker.POINTS, Marker.CUBE_LIST):
                clouds.setdefault(round(float(marker.scale[0]) or 0.04, 3), []).append((points, color))
                continue
            elif marker.type == Marker.TRIANGLE_LIST:
                vertices = points[: len(points) // 3 * 3]
                key = (hashlib.blake2b(vertices.tobytes(), digest_size=16).digest(), tuple(color), marker.color[3])
                if self._meshes_shown.get(name) != key:
                    faces = np.arange(len(vertices), dtype=np.uint32).reshape(-1, 3)
                    opacity = float(marker.color[3]) if marker.color[3] < 1.0 else None
                    rgb = tuple(int(c) for c in color)
                    create = partial(scene.add_mesh_simple, name, vertices, faces, color=rgb, opacity=opacity,
                                     flat_shading=True, side="double", cast_shadow=False,
                                     receive_shadow=False)  # fmt: skip  (no shadows: cheaper to draw)
                    self._put(name, "mesh", create, vertices=vertices, faces=faces, color=rgb, opacity=opacity)
                    self._meshes_shown[name] = key
            else:
                continue
            names.add(name)
        for index, (size, parts) in enumerate(sorted(clouds.items())):
            name = f"/markers/points/{index}"
            points = np.concatenate([part for part, _ in parts])
            colors = np.concatenate([np.broadcast_to(rgb, (len(part), 3)) for part, rgb in parts])
            # created afresh each frame (one per point size, ~0.4 ms each): a viser 1.1 point cloud whose points
            # were updated in place in the same shape was not drawn any more (Chromium, browser test)
            self._put(name, "points", partial(scene.add_point_cloud, name, points, colors=colors, point_size=size,
                                              point_shape="circle", point_shading="flat"), replace=True)
            names.add(name)
        for stale in self._scene.keys() - names:
            self._remove(stale)

    def _put(self, name: str, kind: str, create, replace: bool = False, **props) -> None:
        """Create scene object `name` with `create()`, or when one of this kind is there (and not `replace`),
        assign the `props` that differ from what the browsers have (viser sends each as a small update)."""
        kind_and_handle = self._scene.get(name)
        if kind_and_handle is None or kind_and_handle[0] != kind or replace:
            if kind_and_handle is not None:
                self._remove(name)
            self._scene[name] = (kind, create())
            return
        handle = kind_and_handle[1]
        for prop, value in props.items():
            current = getattr(handle, prop)
            if isinstance(value, np.ndarray):
                if isinstance(current, np.ndarray) and current.shape == value.shape and np.array_equal(current, value):
                    continue
            elif current == value:
                continue
            setattr(handle, prop, value)

    def _remove(self, name: str) -> None:
        _, handle = self._scene.pop(name)
        handle.remove()
        self._meshes_shown.pop(name, None)

    def _show_overlay(self, msg: Image | CompressedImage) -> None:
        """A JPEG overlay goes to the page as it is; any other image is scaled to `overlay_width` and encoded
        (bilinear when less than 2x smaller: area averaging costs 8x the time there and changes little)."""
        try:
            jpeg = viewable_jpeg(msg) if isinstance(msg, CompressedImage) else None
            if jpeg is not None:
                # what assigning `.image` sends once viser has encoded it (its image props): here the file as is
                self._overlay._format, self._overlay._data = "jpeg", jpeg
                return
            rgb = message_to_rgb8(msg)
        except ImageConversionError as error:
            self.get_logger().warning(f"pose_viewer: overlay not shown: {error}", throttle_duration_sec=5.0)
            return
        import cv2

        width = self.settings.overlay_width
        height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
        interpolation = cv2.INTER_LINEAR if rgb.shape[1] < 2 * width else cv2.INTER_AREA
        self._overlay.image = cv2.resize(rgb, (width, height), interpolation=interpolation)

    def _update_status(self) -> None:
        people = self._latest["people"]
        people_data = people.take()  # the status needs the newest only: read twice a second, not every frame
        camera_info_data = self._latest["camera_info"].take()
        if camera_info_data is not None:
            fy = float(deserialize_message(camera_info_data, CameraInfo).k[4])
            self._fy = fy if fy > 0 else self._fy
        if people_data is not None:
            self._people = deserialize_message(people_data, PersonArray)
            self._update_camera(self._people.image_width, self._people.image_height)
        self._fit_views()
        now = time.monotonic()
        state = {"viewer": f"{self.frames_shown} frames shown, {self.frames_dropped()} skipped"}
        publishers = self.count_publishers(self.resolve_topic_name("people"))
        # a slow pose_node (a loaded CPU, a big model) is not a dead one: wait for 3 of its usual intervals
        stale_s = max([self.settings.stale_after_s] + [3 * t for t in people.intervals_s])
        fresh = people.received_at_s is not None and now - people.received_at_s < stale_s
        if publishers == 0:
            state["headline"] = f"waiting for pose_node: nothing publishes {self.resolve_topic_name('people')}"
        elif not fresh:
            state["headline"] = f"pose_node is up, no results for {stale_s:.0f} s (no images?)"
        else:
            state["headline"] = "pose_node running"
        if not fresh and self._scene:  # results are gone: do not show old people as if live
            for name in list(self._scene):
                self._remove(name)
        if self._people is not None and fresh:
            people = self._people.people
            ids = ", ".join(str(p.id) for p in people)
            state |= {"mode": self._people.mode, "model": self._people.model,
                      "people": f"{len(people)}" + (f" (ids {ids})" if ids else "")}
        diagnostics = self._diagnostics
        if diagnostics and now - float(diagnostics["received_at_s"]) < max(stale_s, 3.0):
            rates = diagnostics.get("processed_rate_hz", "?"), diagnostics.get("input_rate_hz", "?")
            state["fps"] = f"{rates[0]} (input {rates[1]})"
            if "latency_p50_ms" in diagnostics:
                state["latency"] = f"{diagnostics['latency_p50_ms']} ms (p90 {diagnostics.get('latency_p90_ms', '?')})"
            stages = stage_times(diagnostics)
            if stages:  # where pose_node's time goes; stages under 0.5 ms left out
                state["stages"] = " · ".join(f"{name} {ms:.0f}" for name, ms in stages.items() if ms >= 0.5) + " ms"
            if "model" not in state and "model" in diagnostics:
                state["mode"], _, state["model"] = diagnostics["model"].partition("/")
        content = status_markdown(state)
        if content != self._status.content:
            self._status.content = content

    def frames_dropped(self) -> int:
        """Frames of markers or overlay replaced by newer ones before the page showed them."""
        return sum(self._latest[key].dropped for key in self._page_topics)

    def destroy_node(self) -> None:
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.server.stop()
        super().destroy_node()


def spin_lightly(node: Node) -> None:
    """Spin `node` until the context shuts down (SIGINT, SIGTERM), with rclpy's events executor where this rclpy
    has it (its wait loop runs in C++: a fraction of the Python executor's CPU time per message), else the
    single-threaded one. spin_once in a loop: the events executor's own spin() does not return on shutdown."""
    try:
        from rclpy.experimental import EventsExecutor

        executor = EventsExecutor(context=node.context)
    except ImportError:
        executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=0.5)
    finally:
        executor.remove_node(node)
        executor.shutdown()


def main(argv: list[str] | None = None) -> int:
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        node = PoseViewer()
        spin_lightly(node)
    except PortInUseError as error:
        print(f"pose_viewer: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"pose_viewer: bad parameter: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
