"""A real rclpy graph for tests: nodes under test and a probe node in a private context, over real DDS.

The probe publishes images (and camera info) and records every message pose_node publishes, so a test
can send a frame and wait for the outputs that carry that frame's header stamp.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from pose_ros.msg import PersonArray
from pose_ros.ros.executor import SpinSafeExecutor

RELIABLE = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
# pose_node on the CPU without the mesh stage: for tests about everything but meshes (faster).
CPU_NO_MESH = (Parameter("device", value="cpu"), Parameter("mesh_model", value="none"))
OUTPUT_TYPES = {"people": PersonArray, "markers": MarkerArray, "overlay": Image}


def stamp_key(msg) -> tuple[int, int]:
    """(sec, nanosec) of a message's header; a MarkerArray's is that of its first marker."""
    header = msg.markers[0].header if isinstance(msg, MarkerArray) else msg.header
    return (header.stamp.sec, header.stamp.nanosec)


class RosGraph:
    """Context manager: a private rclpy context with nodes spinning in a background executor thread."""

    def __init__(self) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SpinSafeExecutor(num_threads=3, context=self.context)  # as pose_node and the launcher
        self.nodes: list[Node] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def start_pose_node(self, *overrides: Parameter, mesh: bool = False, topics=tuple(OUTPUT_TYPES)) -> tuple:
        """An activated pose_node (reliable image QoS, CPU; no mesh stage unless `mesh`) and a probe, both spinning.

        `overrides` come last and win. Returns (node, probe) once pose_node subscribed to the probe's images.
        """
        from pose_ros.ros.pose_node import PoseNode, activate

        defaults = [Parameter("image_reliability", value="reliable"), CPU_NO_MESH[0]]
        if not mesh:
            defaults.append(CPU_NO_MESH[1])
        node = PoseNode(context=self.context, parameter_overrides=[*defaults, *overrides])
        assert activate(node), "pose_node did not configure"
        self.add(node)
        probe = self.add(Probe(self.context, topics=topics))
        probe.wait_for_subscriber()
        return node, probe

    def __enter__(self) -> RosGraph:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._running = False
        self._thread.join(timeout=5)
        for node in self.nodes:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        rclpy.try_shutdown(context=self.context)


class Probe(Node):
    """Publishes frames to pose_node and records its outputs by header stamp."""

    def __init__(
        self, context: Context, image_qos: QoSProfile = RELIABLE, prefix: str = "", topics=tuple(OUTPUT_TYPES)
    ) -> None:
        super().__init__("pose_probe", context=context)
        self.image_pub = self.create_publisher(Image, prefix + "image", image_qos)
        self.info_pub = self.create_publisher(CameraInfo, prefix + "camera_info", image_qos)
        self.received: dict[str, dict[tuple[int, int], object]] = defaultdict(dict)
        self._lock = threading.Lock()
        for topic in topics:
            self.create_subscription(OUTPUT_TYPES[topic], prefix + topic, self._recorder(topic), RELIABLE)

    def _recorder(self, topic: str) -> Callable:
        def record(msg) -> None:
            with self._lock:
                self.received[topic][stamp_key(msg)] = msg

        return record

    def wait_for_subscriber(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.image_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise TimeoutError("pose_node never subscribed to the image topic")
            time.sleep(0.05)

    def outputs(self, key: tuple[int, int], topics=tuple(OUTPUT_TYPES), timeout: float = 30.0) -> dict[str, object]:
        """The messages on `topics` with header stamp `key`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = {t: self.received[t].get(key) for t in topics}
            if all(m is not None for m in found.values()):
                return found
            if time.monotonic() > deadline:
                missing = [t for t, m in found.items() if m is None]
                raise TimeoutError(f"no {missing} for stamp {key} within {timeout} s")
            time.sleep(0.02)

    def send(self, image: Image, info: CameraInfo | None = None) -> tuple[int, int]:
        if info is not None:
            self.info_pub.publish(info)
        self.image_pub.publish(image)
        return stamp_key(image)


def bgr_frame(frame_rgb, sec: int) -> Image:
    """A bgr8 Image of an RGB array with a recognisable header (see `stamped`)."""
    import numpy as np

    from pose_ros.ros.image_conversion import array_to_image

    return stamped(array_to_image(np.ascontiguousarray(frame_rgb[:, :, ::-1]), "bgr8"), sec)


def stamped(msg: Image, sec: int, frame_id: str = "camera_optical_frame") -> Image:
    """Set a recognisable header on `msg` (stamp sec.123456789, frame_id) and return it."""
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = 123456789
    msg.header.frame_id = frame_id
    return msg
