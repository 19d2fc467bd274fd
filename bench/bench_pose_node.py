"""pose_node throughput and latency over real DDS on this machine.

    source scripts/env.sh && python bench/bench_pose_node.py --frames 60 --backends torch onnxruntime

Closed loop: a probe publishes a vtest.avi frame, waits for the PersonArray carrying its stamp, then sends
the next, so every frame is processed (no queue drops). Latency = publish → PersonArray received (decode,
inference, tracking, people + markers + overlay publishing, DDS both ways). FPS = frames / wall time.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import time

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))

import sys
from pathlib import Path

import numpy as np
from rclpy.parameter import Parameter

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "test")]  # the checkout (pose_ros.msg comes from the install space)
from ros_harness import CPU_NO_MESH, Probe, RosGraph, stamped  # noqa: E402

from pose_ros.core import assets  # noqa: E402
from pose_ros.core.sources import read_video_frames  # noqa: E402
from pose_ros.ros.image_conversion import array_to_image  # noqa: E402
from pose_ros.ros.pose_node import PoseNode, activate  # noqa: E402


def measure(backend: str, frames: list[np.ndarray], width: int, height: int, warmup: int = 3) -> dict[str, float]:
    overrides = [
        Parameter("image_reliability", value="reliable"),
        *CPU_NO_MESH,
        Parameter("backend", value=backend),
        Parameter("input_width", value=width),
        Parameter("input_height", value=height),
    ]
    with RosGraph() as ros:
        node = PoseNode(context=ros.context, parameter_overrides=overrides)
        assert activate(node), "pose_node did not configure"
        ros.add(node)
        probe = ros.add(Probe(ros.context, topics=("people",)))  # a perception consumer: no RViz, no overlay viewer
        probe.wait_for_subscriber()
        latencies, people = [], []
        start = None
        for index, frame in enumerate(frames):
            if index == warmup:
                start = time.perf_counter()
            sent = time.perf_counter()
            key = probe.send(stamped(array_to_image(frame, "rgb8"), sec=10_000 + index))
            result = probe.outputs(key, topics=("people",), timeout=60)["people"]
            if index >= warmup:
                latencies.append((time.perf_counter() - sent) * 1000)
                people.append(len(result.people))
        elapsed = time.perf_counter() - start
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    return {"fps": len(latencies) / elapsed, "p50": p50, "p90": p90, "p99": p99, "people": float(np.mean(people))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    parser.add_argument("--sizes", nargs="+", default=["512x384", "256x192"])
    parser.add_argument("--row-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    combos = [(backend, size) for backend in args.backends for size in args.sizes]
    if not args.row_only:
        print(f"pose_node over DDS, vtest.avi 768x576, {args.frames} frames (3 warm-up), CPU threads: {os.cpu_count()}")
        print("| backend | input | FPS | latency p50 ms | p90 ms | p99 ms | people/frame |")
        print("|---|---|---|---|---|---|---|", flush=True)
    if len(combos) > 1:  # one process per row: models of one row must not share threads or memory with another's
        for backend, size in combos:
            command = [sys.executable, __file__, "--frames", str(args.frames), "--backends", backend, "--sizes", size]
            subprocess.run([*command, "--row-only"], check=True)
        return
    backend, size = combos[0]
    width, height = (int(v) for v in size.split("x"))
    frames = read_video_frames(assets.demo_data_dir() / "vtest.avi", range(100, 100 + args.frames))
    r = measure(backend, frames, width, height)
    latency = f"{r['p50']:.0f} | {r['p90']:.0f} | {r['p99']:.0f}"
    print(f"| {backend} | {size} | {r['fps']:.1f} | {latency} | {r['people']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
