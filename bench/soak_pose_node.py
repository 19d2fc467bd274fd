"""Soak test: pose_node as its own process fed 30 Hz vtest.avi for minutes; RSS, latency and drops recorded.

    source scripts/env.sh && python bench/soak_pose_node.py --minutes 10 --rate 30

pose_node runs as `ros2 run`-style executable (install/lib/pose_ros/pose_node) with default parameters
(meshes on; best-effort keep-last-1 input, so frames it cannot keep up with are dropped and counted); this driver
subscribes to people, markers and overlay as RViz and an image viewer would. Halfway through
the camera publisher is destroyed and re-created (a restarted camera driver). Printed at the end:
RSS (the node and its mesh process) after warm-up and at the end (growth %), p50/p99 latency in the first and the
last minute, frames published / processed / dropped (from /diagnostics), mesh updates per second (distinct body
model stamps per tracked person and second in view), and whether the node is still alive.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pose_ros.core import assets  # noqa: E402
from pose_ros.core.sources import read_video_frames  # noqa: E402
from pose_ros.msg import PersonArray  # noqa: E402
from pose_ros.ros.image_conversion import array_to_image  # noqa: E402
from pose_ros.ros.marker_wire import decode_marker_array  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its child processes (the mesh process), MB."""
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for process in (pid, *map(int, children)):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024.0
    return total


class Soak(Node):
    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__("soak_driver")
        self.frames = frames
        self.sent = 0
        self.latencies: list[tuple[float, float]] = []  # (receive time s, latency ms)
        self.diagnostics: dict[str, str] = {}
        self.mesh_stamps: dict[int, set[int]] = {}  # track id → distinct body model stamps
        self.seen: dict[int, list[float]] = {}  # track id → first and last time in view (s)
        self.counts = {"markers": 0, "overlay": 0}
        self.image_pub = self.create_publisher(Image, "image", 1)
        reliable = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
        self.create_subscription(PersonArray, "people", self.on_people, reliable)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.on_diagnostics, 10)
        # markers decoded into arrays, as RViz (C++) does; rclpy's Point objects would load the shared CPU
        self.create_subscription(MarkerArray, "markers", self.on_markers, reliable, raw=True)
        self.create_subscription(Image, "overlay", lambda m: self.count("overlay"), reliable)

    def count(self, topic: str) -> None:
        self.counts[topic] += 1

    def on_markers(self, data: bytes) -> None:
        decode_marker_array(data)
        self.count("markers")
    def restart_camera(self) -> None:
        """Destroy and re-create the image publisher, as a restarted camera driver would."""
        self.destroy_publisher(self.image_pub)
        time.sleep(1.0)
        self.image_pub = self.create_publisher(Image, "image", 1)

    def publish(self) -> None:
        frame = self.frames[self.sent % len(self.frames)]
        msg = array_to_image(frame, "rgb8")
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "camera_optical_frame"
        self.image_pub.publish(msg)
        self.sent += 1

    def on_people(self, msg: PersonArray) -> None:
        now = self.get_clock().now()
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.latencies.append((time.monotonic(), (now.nanoseconds - stamp_ns) / 1e6))
        for person in msg.people:
            if person.tracked:
                self.seen.setdefault(person.id, [stamp_ns / 1e9, stamp_ns / 1e9])[1] = stamp_ns / 1e9
                if person.body_model.name:
                    stamp = person.body_model.stamp.sec * 10**9 + person.body_model.stamp.nanosec
                    self.mesh_stamps.setdefault(person.id, set()).add(stamp)

    def mesh_updates_per_person_s(self) -> float:
        in_view = sum(last - first for first, last in self.seen.values())
        return sum(len(stamps) for stamps in self.mesh_stamps.values()) / in_view if in_view > 0 else 0.0

    def on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith("pose_node"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--mesh-model", default="", help="override mesh_model (default: the node's default)")
    args = parser.parse_args()
    frames = read_video_frames(assets.demo_data_dir() / "vtest.avi", range(100))
    executable = REPO / "install" / "pose_ros" / "lib" / "pose_ros" / "pose_node"
    overrides = ["--ros-args", "-p", f"mesh_model:={args.mesh_model}"] if args.mesh_model else []
    node_process = subprocess.Popen([sys.executable, str(executable), *overrides])
    rclpy.init()
    soak = Soak(frames)
    duration = args.minutes * 60
    start = time.monotonic()
    next_send = start
    rss_after_warmup = None
    restarted = False
    try:
        while (elapsed := time.monotonic() - start) < duration:
            if node_process.poll() is not None:
                print(f"pose_node died with exit code {node_process.returncode}")
                return 1
            if elapsed >= next_send - start:
                soak.publish()
                next_send += 1.0 / args.rate
            if rss_after_warmup is None and elapsed > args.warmup_s:
                rss_after_warmup = rss_mb(node_process.pid)
            if not restarted and elapsed > duration / 2:
                soak.restart_camera()
                restarted = True
            rclpy.spin_once(soak, timeout_sec=max(0.0, min(0.005, next_send - time.monotonic())))
        rss_end = rss_mb(node_process.pid)
        alive = node_process.poll() is None
    finally:
        node_process.send_signal(signal.SIGINT)
        node_process.wait(timeout=20)
        soak.destroy_node()
        rclpy.try_shutdown()
    times = np.array([t for t, _ in soak.latencies]) - start
    latencies = np.array([lat for _, lat in soak.latencies])
    first = latencies[(times > args.warmup_s) & (times < args.warmup_s + 60)]
    last = latencies[times > times.max() - 60]
    print(f"soak: {args.minutes:.1f} min at {args.rate:.0f} Hz, camera publisher restarted at half time")
    print(f"pose_node alive at the end: {alive}")
    print(f"frames published {soak.sent}, people messages received {len(latencies)}")
    print(f"diagnostics: {soak.diagnostics}")
    print(f"markers received {soak.counts['markers']}, overlays received {soak.counts['overlay']}")
    print(f"mesh updates per tracked person and second in view: {soak.mesh_updates_per_person_s():.2f}")
    if rss_after_warmup:
        print(f"RSS after warm-up {rss_after_warmup:.0f} MB, at the end {rss_end:.0f} MB "
              f"({100 * (rss_end / rss_after_warmup - 1):+.1f} %)")
    for name, window in (("first minute", first), ("last minute", last)):
        if len(window):
            print(f"latency {name}: p50 {np.percentile(window, 50):.0f} ms, p99 {np.percentile(window, 99):.0f} ms")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
