"""Offline processing against a consumer-paced replay of the same recording, side by side in one run.

    python bench/bench_bags.py --frames 30 --device cpu        # mesh_model none unless --mesh

Writes a bag of vtest.avi frames (every 4th frame, 10 Hz stamps), then
  offline  `process_bag` (one process, no DDS): frames/s over the frames (model loading excluded: its own figure)
  replay   image_source (bag_pace consumer) -> pose_node over DDS in one process: frames/s from the first frame
           published to the last /people received
and prints both, their ratio, and whether the people (ids, keypoints) are the same.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))

import numpy as np  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import CPU_NO_MESH, Probe, RosGraph  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from pose_ros.core import assets  # noqa: E402
from pose_ros.core.sources import read_video_frames  # noqa: E402
from pose_ros.ros.bag_writer import BagWriter  # noqa: E402
from pose_ros.ros.image_conversion import array_to_image  # noqa: E402
from pose_ros.ros.image_source import ImageSource  # noqa: E402
from pose_ros.ros.pose_node import PoseNode, activate  # noqa: E402
from pose_ros.ros.recorder import pose_ros_typestore  # noqa: E402

BASE_NS = 1_700_000_000_000_000_000


def write_bag(path: Path, frames: int) -> list[tuple[int, int]]:
    images = read_video_frames(assets.demo_data_dir() / "vtest.avi", range(0, 4 * frames, 4))
    stamps = []
    with BagWriter(path) as writer:
        writer.add_topic("/camera/image_raw", Image)
        for i, rgb in enumerate(images):
            msg = array_to_image(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(BASE_NS + i * 100_000_000, 1_000_000_000)
            msg.header.frame_id = "camera"
            writer.write("/camera/image_raw", BASE_NS + i * 100_000_000, msg)
            stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
    return stamps


def people(msg) -> list[tuple[int, list[float]]]:
    return [(p.id, [v for k in p.keypoints for v in (k.x, k.y)]) for p in msg.people]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mesh", action="store_true", help="keep the mesh stage (default: mesh_model none)")
    args = parser.parse_args()
    overrides = [f"device:={args.device}"] + ([] if args.mesh else ["mesh_model:=none"])
    with tempfile.TemporaryDirectory() as tmp:
        bag, out = Path(tmp) / "in", Path(tmp) / "out"
        stamps = write_bag(bag, args.frames)
        command = [sys.executable, "-m", "pose_ros.tools.process_bag", str(bag), str(out), "--quiet"]
        for override in overrides:
            command += ["-p", override]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            print(result.stdout, result.stderr)
            return 1
        offline_fps = float(re.search(r"([0-9.]+) frames/s", result.stdout).group(1))
        store = pose_ros_typestore()
        with Reader(out) as reader:
            offline = {}
            for connection, _, raw in reader.messages():
                if connection.topic == "/people":
                    msg = store.deserialize_cdr(raw, connection.msgtype)
                    offline[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = people(msg)

        parameters = [Parameter("image_reliability", value="reliable"), CPU_NO_MESH[0]]
        parameters[1] = Parameter("device", value=args.device)
        if not args.mesh:
            parameters.append(CPU_NO_MESH[1])
        with RosGraph() as graph:
            node = PoseNode(context=graph.context, parameter_overrides=parameters)
            assert activate(node)
            graph.add(node)
            probe = graph.add(Probe(graph.context, topics=("people",)))
            source = graph.add(ImageSource(context=graph.context, parameter_overrides=[
                Parameter("source", value=str(bag)), Parameter("bag_pace", value="consumer"),
                Parameter("loop", value=False), Parameter("bag_pace_timeout_s", value=600.0),
            ]))
            while node.counters["frames_received"] == 0:
                time.sleep(0.001)
            started = time.monotonic()
            while not source.finished:
                time.sleep(0.01)
            replay_s = time.monotonic() - started
            online = {key: people(msg) for key, msg in probe.received["people"].items()}
    replay_fps = len(stamps) / replay_s
    same = all(
        [i for i, _ in offline[k]] == [i for i, _ in online[k]]
        and all(np.allclose(a, b, atol=1e-3) for (_, a), (_, b) in zip(offline[k], online[k], strict=True))
        for k in stamps
    )
    mesh = "with meshes" if args.mesh else "mesh_model none"
    print(f"{len(stamps)} vtest frames 768x576, pose_node defaults, device {args.device}, {mesh}")
    print(f"offline process_bag          : {offline_fps:.2f} frames/s ({len(offline)} results)")
    print(f"replay paced by the consumer : {replay_fps:.2f} frames/s ({len(online)} results)")
    print(f"offline / replay             : {offline_fps / replay_fps:.2f}x; same people: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
