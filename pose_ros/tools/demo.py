"""The demo: vtest.avi → image_source → pose_node over real DDS, recorded and summarised.

    scripts/demo.sh                       # 120 frames of vtest.avi, outputs in ./output/demo
    scripts/demo.sh --frames 795 --device cpu

Writes overlay.mp4, a few overlay PNGs and an MCAP rosbag2 of the output topics, and prints frames
processed, people per frame, FPS and latency percentiles (image stamp → people message received).
DDS stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) unless the caller set otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import Image
from tqdm import tqdm
from visualization_msgs.msg import MarkerArray

from pose_ros.core import assets
from pose_ros.msg import PersonArray
from pose_ros.ros import shutdown
from pose_ros.ros.image_conversion import to_rgb8
from pose_ros.ros.launcher import LaunchArguments, default_params_file, ros_arguments, start_nodes
from pose_ros.ros.recorder import BagRecorder

RELIABLE = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
RECORDED_TOPICS = {"people": PersonArray, "markers": MarkerArray, "overlay": Image}


@dataclass
class DemoStats:
    """What the demo measured."""

    latencies_ms: list[float] = field(default_factory=list)
    people_per_frame: list[int] = field(default_factory=list)
    first_receive: float = 0.0
    last_receive: float = 0.0

    @property
    def frames(self) -> int:
        return len(self.people_per_frame)

    @property
    def fps(self) -> float:
        span = self.last_receive - self.first_receive
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0

    def report(self, published: int) -> str:
        if not self.frames:
            return f"frames published: {published}, processed: 0"
        lat = np.percentile(self.latencies_ms, [50, 90, 99])
        counts = np.bincount(self.people_per_frame)
        histogram = ", ".join(f"{n} people: {c}" for n, c in enumerate(counts) if c)
        return (
            f"frames published: {published}, processed: {self.frames} "
            f"(dropped by the keep-last-1 queue: {published - self.frames})\n"
            f"people per frame: mean {np.mean(self.people_per_frame):.2f}, max {max(self.people_per_frame)} "
            f"({histogram})\n"
            f"throughput: {self.fps:.2f} FPS\n"
            f"latency image stamp -> people received (ms): p50 {lat[0]:.0f}, p90 {lat[1]:.0f}, p99 {lat[2]:.0f}"
        )


class DemoCollector(Node):
    """Receives pose_node's outputs: latency and people statistics, overlay video and PNGs."""

    def __init__(self, output_dir: Path, png_every: int, progress: tqdm, context=None) -> None:
        super().__init__("pose_demo", context=context)
        self.stats = DemoStats()
        self.output_dir = output_dir
        self.png_every = png_every
        self.progress = progress
        self.video: cv2.VideoWriter | None = None
        self.overlays = 0
        self.pngs: list[Path] = []
        self._lock = threading.Lock()
        self.create_subscription(PersonArray, "people", self.on_people, RELIABLE)
        self.create_subscription(Image, "overlay", self.on_overlay, RELIABLE)

    def on_people(self, msg: PersonArray) -> None:
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            stats = self.stats
            stats.first_receive = stats.first_receive or now
            stats.last_receive = now
            stats.latencies_ms.append((now - stamp) * 1000.0)
            stats.people_per_frame.append(len(msg.people))
            self.progress.update(1)
            self.progress.set_postfix(people=len(msg.people))

    def on_overlay(self, msg: Image) -> None:
        bgr = np.ascontiguousarray(to_rgb8(msg)[:, :, ::-1])
        with self._lock:
            if self.video is None:
                path = str(self.output_dir / "overlay.mp4")
                self.video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (msg.width, msg.height))
            self.video.write(bgr)
            if self.overlays % self.png_every == 0:
                png = self.output_dir / f"overlay_{self.overlays:04d}.png"
                cv2.imwrite(str(png), bgr)
                self.pngs.append(png)
            self.overlays += 1

    def close(self) -> None:
        with self._lock:
            if self.video is not None:
                self.video.release()
                self.video = None


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pose_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(assets.demo_data_dir() / "vtest.avi"), help="video, folder, camera")
    parser.add_argument("--frames", type=int, default=120, help="frames to publish (0: the whole source)")
    parser.add_argument("--rate", type=float, default=10.0, help="publishing rate in Hz (vtest.avi is 10 fps)")
    parser.add_argument("--output-dir", type=Path, default=Path("output/demo"), help="where results go")
    parser.add_argument("--pngs", type=int, default=4, help="how many overlay PNGs to write")
    parser.add_argument("--device", help="pose_node device (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--params-file", type=Path, default=default_params_file(), help="parameters YAML")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns a process exit code."""
    if not Path(args.source).exists():
        print(f"pose_demo: source not found: {args.source} ({assets.SETUP_HINT})", file=sys.stderr)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    bag_path = args.output_dir / "pose_bag"
    if bag_path.exists():
        for child in bag_path.iterdir():
            child.unlink()
        bag_path.rmdir()
    launch_args = LaunchArguments(
        params_file=args.params_file,
        device=args.device,
        source=args.source,
        source_overrides={"max_frames": args.frames, "rate": args.rate, "loop": False},
    )
    shutdown.init(ros_arguments(launch_args))  # SIGINT/SIGTERM: stop cleanly, report what was done, exit 0
    progress = tqdm(total=args.frames or None, unit="frame", desc="pose_node output", file=sys.stdout)
    nodes = collector = recorder = None
    try:
        print(f"starting pose_node (loading the model) and image_source on {args.source} ...", flush=True)
        nodes = start_nodes(launch_args)
        collector = DemoCollector(args.output_dir, max(1, args.frames // max(args.pngs, 1)), progress)
        recorder = BagRecorder(bag_path, RECORDED_TOPICS)
        for node in (collector, recorder):
            nodes.executor.add_node(node)
        spin_until_done(nodes, collector)
    finally:
        extra = tuple(node for node in (collector, recorder) if node is not None)
        if nodes is not None:
            nodes.shutdown(extra_nodes=extra, close=tuple(node.close for node in extra))
        shutdown.finish()
        progress.close()
    if shutdown.stop_reason() in ("SIGINT", "SIGTERM"):
        print(f"\nstopped by {shutdown.stop_reason()}; results so far:")
    if nodes is None or collector is None or recorder is None:
        return 0  # stopped while starting
    published = nodes.image_source.published if nodes.image_source else 0
    print("\n" + collector.stats.report(published))
    print(f"overlay video: {args.output_dir / 'overlay.mp4'} ({collector.overlays} frames)")
    print(f"overlay PNGs: {', '.join(str(p) for p in collector.pngs)}")
    print(f"recording (MCAP rosbag2): {bag_path}  messages: {recorder.counts}")
    print(f"pose_node counters: {dict(nodes.pose_node.counters)}")
    return 0 if collector.stats.frames or shutdown.stop_requested() else 1


def spin_until_done(nodes, collector: DemoCollector, drain_s: float = 3.0) -> None:
    """Spin until image_source has finished and every frame came back or none arrived for `drain_s` s, or
    until a stop was requested (SIGINT, SIGTERM)."""
    finished_at = None
    while not shutdown.stop_requested():
        nodes.executor.spin_once(timeout_sec=shutdown.SPIN_PERIOD_S)
        if finished_at is None and (nodes.image_source is None or nodes.image_source.finished):
            finished_at = time.time()
        if finished_at is None:
            continue
        published = nodes.image_source.published if nodes.image_source else 0
        last_activity = max(finished_at, collector.stats.last_receive)
        if collector.stats.frames >= published or time.time() - last_activity > drain_s:
            end = time.time() + 0.5  # let the last overlay and markers arrive too
            while time.time() < end and not shutdown.stop_requested():
                nodes.executor.spin_once(timeout_sec=0.05)
            return


def main(argv: list[str] | None = None) -> int:
    return run(parse_arguments(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
